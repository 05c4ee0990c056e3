"""Speech to text with timed segments, as subtitles would show them.

    python examples/transcribe.py [AUDIO_FILE]      # WAV, FLAC, MP3, Ogg, WebM, M4A...

Without a file, the minute of speech the tests use (tests/data/speech/long.ogg). Long audio is cut in its
silences by the server; the times are seconds from the start of the file. In a notebook,
`client.transcribe(...)` on its own line shows the same table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import maas_client as maas

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech" / "long.ogg"


def main() -> None:
    audio = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    with maas.Client() as client:
        result = client.transcribe(audio)
    for segment in result.segments:
        print(f"{segment.start:7.2f} {segment.end:7.2f}  {segment.text.strip()}")
    print(f"({result.language}, {result.duration:.1f} s of audio)")


if __name__ == "__main__":
    main()
