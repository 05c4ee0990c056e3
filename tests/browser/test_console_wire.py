"""The console's routes and headers, through Flask's test client (no browser, no model loaded).

What the browser tests cannot see cheaply: the headers are on the console's responses and on no API
response, the console can be turned off, no page or module writes HTML from data, and every file the
console serves is in the package data a wheel ships.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maas_server.app import create_app
from maas_server.console.views import SECURITY_HEADERS
from maas_server.settings import load_settings

CONSOLE = Path(__file__).parents[2] / "maas_server" / "console"
PAGES = ["/console", "/console/play/embed", "/console/admin/models", "/console/admin/keys", "/console/admin/usage",
         "/console/admin/audit", "/docs"]


def _app(**server: object) -> Flask:
    settings = load_settings(file={"server": server, "models": [{"name": "embed", "task": "embeddings",
                                                                 "source": "unused"}]})
    return create_app(settings, load_models=False)


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return _app().test_client()


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_served_with_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_root_redirects_to_the_console(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/console"


def test_modules_and_the_stylesheet_are_served_with_their_types(client: FlaskClient) -> None:
    script = client.get("/console/static/api.js")
    assert script.status_code == 200 and script.mimetype in ("text/javascript", "application/javascript")
    assert script.headers["X-Frame-Options"] == "DENY"
    assert client.get("/console/static/console.css").mimetype == "text/css"


def test_an_unknown_operator_page_is_a_page_that_says_so(client: FlaskClient) -> None:
    response = client.get("/console/admin/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "text/html" and "No such page" in response.get_data(as_text=True)
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/v1/models", "/health", "/openapi.json"])
def test_api_responses_carry_none_of_the_console_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert not set(SECURITY_HEADERS) & set(response.headers.keys())


def test_the_console_adds_no_hook_that_runs_on_api_requests() -> None:
    on, off = _app(), _app(console_enabled=False)
    for hooks in ("before_request_funcs", "after_request_funcs", "teardown_request_funcs"):
        app_wide = {name: len(funcs) for name, funcs in getattr(on, hooks).items() if name != "console"}
        assert app_wide == {name: len(funcs) for name, funcs in getattr(off, hooks).items()}
    assert on.wsgi_app.__class__ is off.wsgi_app.__class__  # no middleware of its own


def test_a_model_name_in_the_url_is_escaped_in_the_page(client: FlaskClient) -> None:
    page = client.get('/console/play/"><script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("path", ["/console", "/", "/docs", "/console/static/api.js"])
def test_the_console_can_be_turned_off(path: str) -> None:
    response = _app(console_enabled=False).test_client().get(path)
    assert response.status_code == 404
    assert response.json is not None and "error" in response.json  # the API's own 404, nothing of the console


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_or_style(client: FlaskClient, path: str) -> None:
    page = client.get(path).get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all('src="/console/static/' in tag for tag in scripts)
    assert all(not body.strip() for body in re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S))
    assert not re.search(r"\sstyle\s*=|<style\b|\son[a-z]+\s*=", page)


def test_no_module_writes_html_from_strings() -> None:
    # Model output reaches the page as text nodes (textContent, el()'s children); these are the ways around that.
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|setAttribute\(\s*['\"]style|eval\(")
    modules = sorted((CONSOLE / "static").rglob("*.js"))
    assert len(modules) > 10
    offenders = [f"{m.name}: {line.strip()}" for m in modules for line in m.read_text().splitlines()
                 if sinks.search(line)]
    assert not offenders


def test_every_console_file_is_in_the_package_data() -> None:
    pyproject = tomllib.loads((CONSOLE.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["maas_server"]
    shipped = [p for p in CONSOLE.rglob("*") if p.is_file() and p.suffix in (".html", ".js", ".css")]
    assert shipped
    missing = [p for p in shipped if not any(fnmatch.fnmatch(str(p.relative_to(CONSOLE.parent)), pat)
                                             for pat in patterns)]
    assert not missing
