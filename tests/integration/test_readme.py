"""The README runs as written: its ```bash and ```python blocks against the real server, port substituted.

A block preceded by ``<!-- readme-test: skip (why) -->`` is not run (it installs packages, starts
another server or takes a quarter of an hour); every other block is. The bash blocks run with
``set -euo pipefail`` from the clone, with ``localhost:8000`` / ``127.0.0.1:8000`` replaced by the
test server's address and ``MAAS_BASE_URL`` pointing at it (the `maas` command and the client read
it, so their lines run unchanged); the python blocks run as a script with the same variable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```(?P<lang>bash|python)\n(?P<code>.*?)\n```", re.S)
SKIP = "<!-- readme-test: skip"


def readme_blocks() -> list[tuple[str, str, bool]]:
    """(language, code, skipped) for each ```bash and ```python block of the README, in order."""
    text = (ROOT / "README.md").read_text()
    return [(m["lang"], m["code"], m["before"].startswith(SKIP)) for m in BLOCK.finditer(text)]


def _run(lang: str, code: str, url: str) -> subprocess.CompletedProcess[str]:
    address = url.removeprefix("http://")
    env = {**os.environ, "MAAS_BASE_URL": url, "PYTHONPATH": str(ROOT)}
    if lang == "bash":
        code = code.replace("localhost:8000", address).replace("127.0.0.1:8000", address)
        argv = ["bash", "-c", "set -euo pipefail\n" + code]
    else:
        argv = [sys.executable, "-c", code]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_readme_has_runnable_blocks_and_says_why_it_skips_the_others() -> None:
    blocks = readme_blocks()
    assert {lang for lang, _, skipped in blocks if not skipped} == {"bash", "python"}
    text = (ROOT / "README.md").read_text()
    assert all(re.search(rf"{re.escape(SKIP)} \(.+\) -->", line) for line in text.splitlines() if SKIP in line)


@pytest.mark.parametrize("index", [i for i, (_, _, skipped) in enumerate(readme_blocks()) if not skipped])
def test_a_readme_block_runs_against_the_real_server(index: int, server_url: str) -> None:
    lang, code, _ = readme_blocks()[index]
    done = _run(lang, code, server_url)
    assert done.returncode == 0, f"block {index} failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert '"error"' not in done.stdout, done.stdout  # curl exits 0 on an HTTP error: its body says so
    if "capital of France" in code:
        assert "Paris" in done.stdout
    if lang == "python":
        # What a newcomer should see: a right answer, a stream that ends its line, labels that fit. The story's
        # 60 greedy tokens pass near-ties (top two logits 0.05 apart), so its wording and line breaks may differ
        # from one CPU to another: it is whatever comes between the answer and the six lines printed after it.
        lines = done.stdout.splitlines()
        assert "Paris" in lines[0]
        story, after = " ".join(lines[1:-6]), lines[-6:]
        assert len(story.split()) >= 8 and "cat" in story.lower(), done.stdout
        assert after[:3] == ["2 vectors of 384", "positive", "sports"], done.stdout  # also: the stream ended its line
        # cat.jpg's top two ImageNet labels score 0.371 and 0.370: either, or tabby, is the cat.
        assert after[3] in {"tiger cat", "Egyptian cat", "tabby, tabby cat"}, done.stdout
        assert "Angela Merkel" in after[4] and after[5] == "True", done.stdout
