"""The converted-model cache: one entry per model content, shared by every venv, written atomically,
and listed and cleared by `maas-server cache`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from maas_server import cli
from maas_server.models.sources import CacheEntry, _locked, cache_entries, cached_gguf_conversion, remove_cache_entry


class Converter:
    """A stand-in for the GGUF conversion: writes a config and some weights, and counts its calls."""

    def __init__(self, weights: bytes = b"w" * 1000) -> None:
        self.calls = 0
        self.weights = weights

    def __call__(self, out: Path) -> None:
        self.calls += 1
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(self.weights)


def _gguf(folder: Path, content: bytes = b"gguf weights") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.gguf"
    path.write_bytes(content)
    return str(path)


def test_two_venvs_with_the_same_model_file_share_one_entry(tmp_path: Path) -> None:
    convert = Converter()
    first = cached_gguf_conversion(_gguf(tmp_path / "venv-a"), tmp_path / "cache", convert)
    second = cached_gguf_conversion(_gguf(tmp_path / "venv-b"), tmp_path / "cache", convert)
    assert first == second and convert.calls == 1
    assert [e.path for e in cache_entries(tmp_path / "cache")] == [first]


def test_a_changed_model_file_converts_again(tmp_path: Path) -> None:
    convert = Converter()
    first = cached_gguf_conversion(_gguf(tmp_path / "a", b"version 1"), tmp_path / "cache", convert)
    second = cached_gguf_conversion(_gguf(tmp_path / "a", b"version 2"), tmp_path / "cache", convert)
    assert first != second and convert.calls == 2


def test_an_interrupted_conversion_leaves_no_entry(tmp_path: Path) -> None:
    def crash(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise OSError("disk full")

    gguf = _gguf(tmp_path / "a")
    with pytest.raises(OSError, match="disk full"):
        cached_gguf_conversion(gguf, tmp_path / "cache", crash)
    assert cache_entries(tmp_path / "cache") == []
    convert = Converter()
    entry = cached_gguf_conversion(gguf, tmp_path / "cache", convert)
    assert convert.calls == 1 and (entry / "model.safetensors").exists()


def test_servers_starting_together_convert_once(tmp_path: Path) -> None:
    gguf, cache = _gguf(tmp_path / "a"), tmp_path / "cache"
    results: list[Path] = []
    second_converted = []
    second = threading.Thread(target=lambda: results.append(
        cached_gguf_conversion(gguf, cache, lambda out: second_converted.append(out))))

    def first_convert(out: Path) -> None:
        # The second server starts while the first converts: it must wait for the lock, not convert too.
        second.start()
        second.join(timeout=1)
        assert second.is_alive() and not second_converted
        Converter()(out)

    results.append(cached_gguf_conversion(gguf, cache, first_convert))
    second.join()
    assert results[0] == results[1] and not second_converted
    assert (results[0] / "model.safetensors").exists()


def test_clear_leaves_an_entry_that_is_being_converted(tmp_path: Path) -> None:
    entry_path = cached_gguf_conversion(_gguf(tmp_path / "a"), tmp_path / "cache", Converter())
    (entry,) = cache_entries(tmp_path / "cache")
    with _locked(entry_path.parent / f".{entry_path.name}.lock"):
        assert remove_cache_entry(entry) is False
    assert entry_path.exists()
    assert remove_cache_entry(entry) is True and not entry_path.exists()


def test_cache_list_shows_entries_with_sizes_and_clear_removes_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MAAS_CACHE_DIR", str(cache))
    small = cached_gguf_conversion(_gguf(tmp_path / "a", b"one"), cache, Converter(b"x" * 2000))
    big = cached_gguf_conversion(_gguf(tmp_path / "b", b"two"), cache, Converter(b"x" * 3_000_000))
    (cache / "gguf" / "old-entry").mkdir()  # an older maas's folder: no completion marker

    assert cli.main(["cache", "list"]) == 0
    out, err = capsys.readouterr()
    assert f"3.0 MB  {big.name}" in out and f"kB  {small.name}" in out
    assert "old-entry  (incomplete" in out and str(cache) in err and "3 entries" in err

    assert cli.main(["cache", "clear", small.name]) == 0
    assert [e.path for e in cache_entries(cache)] == [big, cache / "gguf" / "old-entry"]
    assert cli.main(["cache", "clear", "no-such-entry"]) == 2
    assert "no cache entry named no-such-entry" in capsys.readouterr().err
    assert cli.main(["cache", "clear"]) == 0
    assert cache_entries(cache) == [] and "freed 3.0 MB" in capsys.readouterr().err


def test_an_entry_without_its_marker_is_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "gguf" / "x"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert cache_entries(tmp_path / "cache") == [CacheEntry(folder, 2, complete=False)]
