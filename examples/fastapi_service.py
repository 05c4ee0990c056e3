"""A FastAPI service that calls maas with one AsyncClient for its whole lifetime.

    pip install 'maas-kit[examples]'                 # fastapi, uvicorn and httpx (AsyncClient's transport)
    MAAS_BASE_URL=http://127.0.0.1:8000 uvicorn examples.fastapi_service:app --port 9000
    curl -s localhost:9000/search -H 'Content-Type: application/json' \\
         -d '{"query": "bread", "documents": ["Knead the dough.", "Change the tyre."]}'
    curl -sN localhost:9000/ask -H 'Content-Type: application/json' -d '{"question": "Capital of France?"}'

The client is made when the app starts (``lifespan``) and closed when it stops, so every request
shares its connection pool; a request handler never makes its own client. The handlers await the
client, so the event loop serves other requests while maas computes. A maas error becomes the
same status for the caller when it is theirs to fix (4xx), else 502 Bad Gateway.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

import maas_client as maas


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # MAAS_BASE_URL and MAAS_API_KEY configure the client, as for any maas_client program.
    async with maas.AsyncClient() as client:
        app.state.maas = client
        yield


app = FastAPI(title="maas example service", lifespan=lifespan)


def maas_client(request: Request) -> maas.AsyncClient:
    client: maas.AsyncClient = request.app.state.maas
    return client


MaasClient = Annotated[maas.AsyncClient, Depends(maas_client)]  # what a handler declares to get the client


@app.exception_handler(maas.APIError)
async def maas_failed(request: Request, exc: maas.APIError) -> JSONResponse:
    status = exc.status_code if isinstance(exc, maas.APIStatusError) and 400 <= exc.status_code < 500 else 502
    return JSONResponse({"detail": f"maas: {exc}"}, status_code=status)


class Search(BaseModel):
    query: str = Field(min_length=1)
    documents: list[str] = Field(min_length=1, max_length=256)


class Hit(BaseModel):
    document: str
    score: float


@app.post("/search")
async def search(body: Search, client: MaasClient) -> list[Hit]:
    """The documents, most similar to the query first (cosine similarity of their embeddings)."""
    vectors = (await client.embed([body.query, *body.documents])).vectors
    query, documents = vectors[0], vectors[1:]
    scores = [_cosine(query, vector) for vector in documents]
    ranked = sorted(zip(body.documents, scores), key=lambda pair: pair[1], reverse=True)
    return [Hit(document=document, score=round(score, 4)) for document, score in ranked]


class Question(BaseModel):
    question: str = Field(min_length=1)
    max_tokens: int = Field(default=80, ge=1, le=512)


@app.post("/ask")
async def ask(body: Question, client: MaasClient) -> StreamingResponse:
    """The answer as plain text, streamed as it is generated."""
    # Opened before the response starts, so that an error becomes a status code, not a cut stream.
    stream = await client.chat(body.question, max_tokens=body.max_tokens, temperature=0, stream=True)

    async def text() -> AsyncIterator[str]:
        # Closing the stream (also when the caller hangs up) stops the generation on the server.
        async with stream:
            async for piece in stream.iter_text():
                yield piece

    return StreamingResponse(text(), media_type="text/plain; charset=utf-8")


@app.get("/health")
async def health(client: MaasClient) -> dict[str, object]:
    """Ready when maas answers; lists the models it serves."""
    return {"status": "ok", "models": [model.id for model in await client.models()]}


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, port=9000)
