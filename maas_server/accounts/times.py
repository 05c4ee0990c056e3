"""Reading the dates operators type (`--expires`, `--since`, `?since=`)."""

from __future__ import annotations

from datetime import UTC, datetime

# The times a date can name (0001-01-01 to 9999-12-31, UTC), in unix seconds: anything else, infinity and NaN
# included, is no date, and could not be written back as one (nor as JSON, for the non-finite).
EARLIEST = datetime.min.replace(tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def parse_time(text: str) -> float:
    """Unix seconds from an ISO date/time (UTC unless it names a zone) or a unix timestamp."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = _iso(text)
    if not EARLIEST <= seconds <= LATEST:  # false for NaN too
        raise ValueError(f"{text!r} is not a date between 0001-01-01 and 9999-12-31 (unix seconds "
                         f"{EARLIEST:.0f} to {LATEST:.0f})")
    return seconds


def _iso(text: str) -> float:
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
