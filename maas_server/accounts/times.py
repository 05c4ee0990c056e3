"""Reading the dates operators type (`--expires`, `--since`, `?since=`)."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(text: str) -> float:
    """Unix seconds from an ISO date/time (UTC unless it names a zone) or a unix timestamp."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][+HH:MM] "
                         f"or unix seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def format_time(seconds: float | None) -> str:
    """ISO 8601 UTC, to the second; '-' for none."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
