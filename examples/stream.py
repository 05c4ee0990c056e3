"""Print a completion as it is generated.

    python examples/stream.py "Once upon a time"
"""

from __future__ import annotations

import sys

import maas_client as maas


def main() -> None:
    prompt = sys.argv[1] if len(sys.argv) > 1 else "Once upon a time"
    with maas.Client() as client:
        print(prompt, end="", flush=True)
        # The with block closes the stream (and stops generation) even if the loop breaks.
        with client.generate(prompt, max_tokens=60, stream=True) as stream:
            for chunk in stream:
                print(chunk.text, end="", flush=True)
        print()


if __name__ == "__main__":
    main()
