"""Complete a prompt.

    make serve                                   # in another terminal
    python examples/generate.py "Once upon a time"
"""

from __future__ import annotations

import sys

import maas_client as maas


def main() -> None:
    prompt = sys.argv[1] if len(sys.argv) > 1 else "Once upon a time"
    with maas.Client() as client:  # MAAS_BASE_URL, default http://127.0.0.1:8000
        out = client.generate(prompt, max_tokens=40, temperature=0.7, seed=0)
    print(prompt + out.text)
    assert out.usage is not None
    print(f"\n[{out.model}: {out.usage.completion_tokens} tokens, finish_reason={out.choices[0].finish_reason}]")


if __name__ == "__main__":
    main()
