"""The console in headless Chromium against the real server with the default models.

The server starts as tests/integration starts it (`ServerProcess`, `make serve`'s command and default
config), with a store of its own that holds one admin key: the browser tests create and revoke keys,
which must not touch the keyless server the integration tests share. Chromium is Debian's, driven by
Playwright through its executable path (`MAAS_CHROMIUM`, else `chromium` on PATH): nothing is downloaded.
Without it the tests skip, except under CI (`CI` set), where they fail: .ci/run installs it.

Each test leaves a screenshot of its page in `MAAS_SCREENSHOTS` (a folder) if set, else in pytest's
temporary folder (`screenshots0/`); the path is printed at the end of the run.

While working on the console, `MAAS_CONSOLE_URL` and `MAAS_CONSOLE_ADMIN_KEY` point the tests at a
server already running (with the default models and that admin key) instead of starting one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from maas_server.accounts import AccountSettings, Store, create_key
from maas_server.testing import ServerProcess
from tests.integration.conftest import READY_TIMEOUT_S

_BROWSER_TESTS = "tests/browser/test_console_pages.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _BROWSER_TESTS in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)  # it starts the real server: `make test-unit` leaves it out


@dataclass
class Console:
    """The running server, its admin key, and where screenshots go."""

    url: str
    admin_key: str
    screenshots: Path
    server: ServerProcess | None  # None: a server that was already running


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    shots = Path(os.environ["MAAS_SCREENSHOTS"]) if os.environ.get("MAAS_SCREENSHOTS") \
        else tmp_path_factory.mktemp("screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    if os.environ.get("MAAS_CONSOLE_URL"):
        yield Console(os.environ["MAAS_CONSOLE_URL"], os.environ["MAAS_CONSOLE_ADMIN_KEY"], shots, None)
        return
    data = tmp_path_factory.mktemp("console-data")
    store = Store(AccountSettings(data_dir=data).url)
    admin_key, _ = create_key(store, "operator", admin=True)
    store.dispose()
    server = ServerProcess(ready_timeout=READY_TIMEOUT_S, extra_args=["--data-dir", str(data)])
    with server as url:
        yield Console(url, admin_key, shots, server)
    print(f"\nconsole screenshots: {shots}")


def _chromium() -> str:
    path = os.environ.get("MAAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    message = "Chromium is not installed (apt-get install chromium, or set MAAS_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


@dataclass
class Tab:
    """One browser tab on the console, with what its console logged (CSP reports show there)."""

    page: Any
    console: Console
    messages: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        """Go to a console path and wait for its module to finish its first calls."""
        response = self.page.goto(self.console.url + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def use_key(self, key: str) -> None:
        """Type a key into the header's form, as a person does; it stays in this tab's session storage."""
        self.page.fill("#api-key", key)
        self.page.click("#key-form button[type=submit]")

    def shot(self, name: str) -> Path:
        path = self.console.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(console: Console, chromium: Any) -> Iterator[Tab]:
    """A fresh tab at 1280 px that has the admin key set; fails the test on any CSP violation it logs."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    tab = Tab(page, console)
    page.on("console", lambda message: tab.messages.append(message.text))
    page.on("pageerror", lambda error: tab.messages.append(f"page error: {error}"))
    tab.open("/console")
    tab.use_key(console.admin_key)
    yield tab
    context.close()
    violations = [m for m in tab.messages if "Content Security Policy" in m or m.startswith("page error")]
    assert not violations, json.dumps(violations, indent=1)
