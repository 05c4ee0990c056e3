"""docs/client.md's route table lists every route the server serves, and the methods it names exist.

The routes are the app's own (Flask's url_map), so a route added to the server without its line in
the table fails here.
"""

from __future__ import annotations

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
    served = {(verb, _template(rule.rule)) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
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
