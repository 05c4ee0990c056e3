"""Build tiny random-weight models in a folder, laid out exactly like a Hugging Face download.

They exercise the same loading code a real hub id takes (`from_pretrained(folder)`), in well
under a second each. Tokenizers are trained here on a few sentences with `tokenizers`.
"""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "Once upon a time there was a cat who liked to sleep in the sun.",
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "Hello world! How are you today? I am fine, thank you.",
    "Machine learning models turn numbers into other numbers.",
] * 20

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def gpt2(folder: Path) -> str:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _bert_tokenizer(folder: Path):  # type: ignore[no-untyped-def]
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(CORPUS, vocab_size=200, min_frequency=1)
    wordpiece.save_model(str(folder))
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


def _bert_config(tokenizer, **extra):  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, **extra)


def bert(folder: Path) -> str:
    from transformers import BertModel

    tokenizer = _bert_tokenizer(folder)
    torch.manual_seed(0)
    BertModel(_bert_config(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def bert_classifier(folder: Path) -> str:
    from transformers import BertForSequenceClassification

    tokenizer = _bert_tokenizer(folder)
    torch.manual_seed(0)
    config = _bert_config(tokenizer, num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"},
                          label2id={"negative": 0, "neutral": 1, "positive": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def resnet(folder: Path) -> str:
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4,
                          id2label={0: "cat", 1: "dog", 2: "cup", 3: "car"},
                          label2id={"cat": 0, "dog": 1, "cup": 2, "car": 3})
    ResNetForImageClassification(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(folder)
    return str(folder)


def timm_weights(folder: Path) -> str:
    """A timm `test_efficientnet` state dict saved under *different* key names, as the
    EfficientNet-Lite0 package does: the loader must pair tensors by position and shape."""
    import timm

    torch.manual_seed(0)
    state = timm.create_model("test_efficientnet", pretrained=False, num_classes=1000).state_dict()
    renamed = {f"_renamed.{i}.{name.replace('.', '_')}": tensor for i, (name, tensor) in enumerate(state.items())}
    path = folder / "weights.pth"
    torch.save(renamed, path)
    return str(path)


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _wordpiece_tokenizer():  # type: ignore[no-untyped-def]
    # Built from the trained tokenizer object: BertTokenizerFast(vocab_file=...) (as _bert_tokenizer does)
    # keeps only the 5 special tokens under transformers 5, so every word would be one [UNK], and
    # entity tests need real word pieces ("capitals" -> "capital", "##s").
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing
    from transformers import PreTrainedTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(CORPUS, vocab_size=200, min_frequency=1)
    # [CLS] ... [SEP], as a BERT download adds them (a tokenizer trained from scratch has no post-processor yet)
    wordpiece.post_processor = BertProcessing(("[SEP]", wordpiece.token_to_id("[SEP]")),
                                              ("[CLS]", wordpiece.token_to_id("[CLS]")))
    return PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def bert_token_classifier(folder: Path, forced: str | None = None) -> str:
    """A BIO token classifier (O, B-/I-PER, B-/I-LOC). With `forced`, every token gets that label
    with probability ~1 (a zero weight and one large bias), so tests know what to expect."""
    from transformers import BertForTokenClassification

    tokenizer = _wordpiece_tokenizer()
    torch.manual_seed(0)
    config = _bert_config(tokenizer, num_labels=len(NER_LABELS), id2label=dict(enumerate(NER_LABELS)),
                          label2id={label: i for i, label in enumerate(NER_LABELS)})
    model = BertForTokenClassification(config)
    if forced is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(-20.0)
            model.classifier.bias[NER_LABELS.index(forced)] = 20.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
