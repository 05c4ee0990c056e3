"""The browser console: playgrounds for every served task and the operator's pages, at /console.

A wire module of its own: server-rendered page shells (Jinja templates) and small ES modules that
call the public /v1 API with the user's key, exactly as any client does. Nothing here reads the
registry or the store: the pages learn the models from ``GET /v1/models`` and the request shapes
from ``/openapi.json``, so a task added to the server shows up without editing the console.

Every response of this blueprint (and only of it: its hooks never run on an API request) carries a
strict Content-Security-Policy, ``X-Frame-Options: DENY`` and ``no-referrer``. ``console_enabled =
false`` in the settings leaves the routes out entirely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:  # the app imports this module: it adds nothing to the app's import but itself
    from ..settings import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """Serve the console at /console (and / and /docs), unless the settings turn it off."""
    if not settings.console_enabled:
        return
    from .views import bp  # imported here: a server with the console off never loads it

    app.register_blueprint(bp)
