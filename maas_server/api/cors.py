"""CORS: off unless the operator lists origins (MAAS_CORS_ORIGINS="https://app.example.com,...").

Without it, no response carries Access-Control-Allow-Origin, so browsers refuse pages on other
origins to read responses: a key pasted into one web page cannot be used from another.
"""

from __future__ import annotations

from flask import Flask, Response, request

_EXPOSED = ("X-Request-ID, Retry-After, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "
            "x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, "
            "x-ratelimit-reset-tokens")


def init_app(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer browsers from `origins` ("*" for any); nothing is registered when it is empty."""
    if not origins:
        return

    def allow(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and ("*" in origins or origin in origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSED
            response.vary.add("Origin")
            if request.method == "OPTIONS":  # a preflight
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-ID"
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    app.after_request(allow)
