"""What the client's docs claim: the route table lists every route the server serves (Flask's url_map,
so a new route without its line fails here), the methods it names exist, and streamed examples are
bounded (``max_tokens`` or ``temperature=0``), so that running one does not print a page of noise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import maas_client as maas

pytest.importorskip("flask")

ROOT = Path(__file__).resolve().parents[2]
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`")
METHOD = re.compile(r"`(?:await )?([a-z_]+)\(")


def _table() -> list[list[str]]:
    """The cells of each row of the "Routes and methods" table."""
    text = (ROOT / "docs" / "client.md").read_text()
    section = text.split("## Routes and methods", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def _template(path: str) -> str:
    """``/v1/models/<path:name>`` and ``/v1/models/{model}`` alike: ``/v1/models/{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_the_route_table_lists_every_route_the_server_serves(tmp_path: Path) -> None:
    from tests.server.accounting_support import word_app

    app = word_app(tmp_path)
    served = {(verb, _template(rule.rule)) for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith("console.")  # pages, not the API
              for verb in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    listed = [(verb, _template(path)) for row in _table() for verb, path in ROUTE.findall(row[0])]
    missing, stale = served - set(listed), set(listed) - served
    assert not missing and not stale, f"not in docs/client.md: {sorted(missing)}; not served: {sorted(stale)}"
    assert len(listed) == len(set(listed)), "a route is listed twice"


def test_each_listed_method_exists_on_both_clients_and_every_method_is_listed() -> None:
    named: set[str] = set()
    for route, sync, asynchronous in _table():
        assert METHOD.findall(sync) == METHOD.findall(asynchronous), route
        named.update(METHOD.findall(sync))
    public = {name for name in dir(maas.Client) if not name.startswith("_") and callable(getattr(maas.Client, name))}
    assert named <= public and named <= set(dir(maas.AsyncClient))
    assert public - named == {"close", "with_options"}


def _python_sources() -> dict[str, str]:
    """The Python a user copies: code blocks of the README and docs, examples/, the notebook's cells."""
    sources = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
        sources[doc.name] = "\n".join(blocks)
    for example in sorted((ROOT / "examples").glob("*.py")):
        sources[example.name] = example.read_text()
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    sources["quickstart.ipynb"] = "\n".join("".join(cell["source"]) for cell in notebook["cells"]
                                             if cell["cell_type"] == "code")
    return sources


def test_every_streamed_generation_in_the_docs_and_examples_is_bounded() -> None:
    unbounded = [f"{name}: {line.strip()}" for name, source in _python_sources().items()
                 for line in source.splitlines()
                 if re.search(r"\b(generate|chat|create_response)\(.*stream=True", line)
                 and not re.search(r"max_(output_)?tokens=|temperature=0\b", line)]
    assert not unbounded, unbounded
    assert any("stream=True" in source for source in _python_sources().values())  # the check sees the examples
