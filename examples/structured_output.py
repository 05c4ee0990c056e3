"""Typed answers: a reply held to a pydantic model's schema, and a typed tool call.

    python examples/structured_output.py "The Eiffel Tower is in Paris and opened in 1889."
"""

from __future__ import annotations

import sys

from pydantic import BaseModel

import maas_client as maas


class Fact(BaseModel):
    subject: str
    place: str
    year: int


def main() -> None:
    text = sys.argv[1] if len(sys.argv) > 1 else "The Eiffel Tower is in Paris and opened in 1889."
    with maas.Client() as client:
        # The server constrains generation to Fact's JSON schema; chat_parse returns a Fact.
        try:
            fact = client.chat_parse(f"Extract the fact: {text}", Fact, max_tokens=80, temperature=0)
            print(f"{fact.subject} | {fact.place} | {fact.year}")
        except maas.StructuredOutputError as exc:  # e.g. max_tokens cut the JSON short
            print(f"no fact: {exc}")

        weather = maas.Tool.define("get_weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                   "required": ["city"]}, description="The weather in a city.")
        reply = client.chat("What is the weather in Paris?", tools=[weather], tool_choice="required", max_tokens=60)
        for call in reply.tool_calls:
            print(f"call {call.function.name}({call.arguments})")


if __name__ == "__main__":
    main()
