"""Structured logs: one JSON object per line, and the one log line each request gets.

A request's line carries its id, method, route, status, latency, model and key name (never the
key). Prompts, outputs and images never appear unless the operator sets ``MAAS_LOG_CONTENT=1``
(``--log-content``), a debug setting that adds the request body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

access_log = logging.getLogger("maas.access")

# LogRecord attributes that are not extra fields passed with `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# For gunicorn's `logconfig_dict`: its defaults with this formatter; its loggers stop propagating to
# the root's handler, which would print each line twice. gunicorn's access log is silenced: our
# `maas.access` line covers every request, and gunicorn's would repeat it with the raw URL, query
# string (and any credential in it) included.
GUNICORN_JSON_LOGS: dict[str, Any] = {
    "formatters": {"generic": {"()": "maas_server.ops.logs.JsonFormatter"}},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
    },
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which gunicorn worker
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Every log line on stderr as JSON (replaces the root logger's handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_request(**fields: Any) -> None:
    """The request's one line: fields become JSON keys (request_id, route, status, latency_ms...).

    Text fields pass through `redact_credentials`: the body (with ``--log-content``) and the
    client's request id are the caller's text, and a key pasted into them must not reach the log.
    """
    fields = {name: redact_credentials(value) if isinstance(value, str) else value for name, value in fields.items()}
    access_log.info("%s %s %s", fields.get("method"), fields.get("route"), fields.get("status"), extra=fields)


# Parameter names that carry credentials in URLs and forms; the server refuses them in a query string.
CREDENTIAL_NAMES = frozenset({"api_key", "apikey", "api-key", "key", "access_token", "token"})
KEY_PREFIX = "maas_"  # accounts.keys.PREFIX: every key starts with it

_NAMES = "|".join(re.escape(name) for name in sorted(CREDENTIAL_NAMES, key=len, reverse=True))
_NAMED_CREDENTIAL = re.compile(  # name=value (query, form) or "name": "value" (JSON)
    rf"""(?i)(["']?(?<![\w-])(?:{_NAMES})["']?\s*[:=]\s*["']?)([^"'&\s,;}}]+)""")
_KEY = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{8,}")


def redact_credentials(text: str) -> str:
    """`text` with the values of credential parameters and anything shaped like a key replaced."""
    text = _NAMED_CREDENTIAL.sub(r"\1[redacted]", text)
    return _KEY.sub(KEY_PREFIX + "[redacted]", text)
