"""A small chat loop that keeps the conversation; an empty line or Ctrl-D ends it.

    python examples/chat.py
"""

from __future__ import annotations

import maas_client as maas


def main() -> None:
    messages: list[dict[str, str]] = [
        {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."}
    ]
    with maas.Client() as client:
        while True:
            try:
                text = input("you> ").strip()
            except EOFError:
                break
            if not text:
                break
            messages.append({"role": "user", "content": text})
            print("bot> ", end="", flush=True)
            reply = ""
            # temperature=0: the model's likeliest words. The 135M default model answers questions of
            # fact right that way, and makes things up at the default temperature 1.0.
            with client.chat(messages, max_tokens=120, temperature=0, stream=True) as stream:
                for chunk in stream:
                    reply += chunk.text
                    print(chunk.text, end="", flush=True)
            print()
            messages.append({"role": "assistant", "content": reply})


if __name__ == "__main__":
    main()
