"""Ask several questions at once with the AsyncClient, then stream one answer.

    pip install 'maas-kit[async]'
    python examples/async_chat.py "What is the capital of France?" "Name a prime number."
"""

from __future__ import annotations

import asyncio
import sys

import maas_client as maas


async def main() -> None:
    questions = sys.argv[1:] or ["What is the capital of France?", "Name a prime number."]
    async with maas.AsyncClient() as client:
        # One client serves concurrent calls: the server batches them on its side.
        replies = await asyncio.gather(*(client.chat(q, max_tokens=40, temperature=0) for q in questions))
        for question, reply in zip(questions, replies):
            print(f"{question}\n  {reply.text.strip()}  (request {reply.request_id})")
        # Leaving the block early closes the response, which stops the generation on the server.
        async with await client.chat(questions[0], max_tokens=40, stream=True) as stream:
            async for text in stream.iter_text():
                print(text, end="", flush=True)
        print()


if __name__ == "__main__":
    asyncio.run(main())
