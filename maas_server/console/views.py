"""The console's routes: page shells only. The data comes from the browser's own calls to /v1."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template
from flask.typing import ResponseReturnValue

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/console/static")

# No inline script or style anywhere: pages load their modules and one stylesheet from 'self'.
# Scripts set sizes and colours through the CSSOM (element.style.x = ...), which CSP allows, and
# never write a style attribute or HTML from data. img/media accept blob: and data: for the
# user's own uploads and the server's PNG overlays; connect-src 'self' keeps the key on this origin.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# The operator's pages: name in the URL -> title. Each has a template and a module of its name.
ADMIN_PAGES = {"models": "Models", "keys": "Keys", "usage": "Usage", "audit": "Audit log"}


@bp.after_request
def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/")
def root() -> ResponseReturnValue:
    return redirect("/console", code=302)


@bp.get("/console")
@bp.get("/console/")
def home() -> str:
    """The key form and the list of models, each linking to its playground."""
    return render_template("console/home.html", title="Console", module="home")


@bp.get("/console/play/<path:model>")
def play(model: str) -> str:
    """One model's playground; the page's module reads the model's task and draws the right form."""
    return render_template("console/play.html", title=model, module="play", model=model)


@bp.get("/console/admin/<page>")
def admin(page: str) -> ResponseReturnValue:
    if page not in ADMIN_PAGES:
        return render_template("console/missing.html", title="Not found", module="home"), 404
    return render_template(f"console/admin_{page}.html", title=ADMIN_PAGES[page], module=f"admin_{page}")


@bp.get("/docs")
def docs() -> str:
    """The API reference, drawn in the browser from /openapi.json."""
    return render_template("console/docs.html", title="API reference", module="docs")
