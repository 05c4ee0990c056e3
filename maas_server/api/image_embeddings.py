"""POST /v1/images/embeddings: a vector per image, from an image classifier's pooled features.

For image-to-image similarity (near-duplicates, "more like this"); the vectors have length 1, so a dot
product is the cosine. No served model has a text tower, so this offers no text-to-image search; and
OpenAI's /v1/embeddings takes text only, so images get a route of their own, with the answer in
OpenAI's embedding-list shape.
"""

from __future__ import annotations

from typing import Any

from ..models.image_io import EMBED_IMAGE
from ..models.text_io import Vector
from ._common import json_response, resolve_model, state, submit, wait_all
from .embeddings import Embedding, EmbeddingList
from .endpoints import Family
from .forms import PNG_2X2, image_form
from .images import ImageRequest, decode_images, read_image_request
from .metering import report_usage
from .wire import Usage

family = Family("image_embeddings", __name__)


@family.post("/v1/images/embeddings", "Image embeddings: an image classifier's pooled features, for image similarity",
             request=ImageRequest, response=EmbeddingList, serves=(EMBED_IMAGE,), multipart=image_form({}),
             examples={"base64": {"image": PNG_2X2}})
def embed_images() -> Any:
    body, images = read_image_request(ImageRequest)
    entry = resolve_model(body.model)
    vectors: list[Vector] = wait_all(submit(entry, EMBED_IMAGE, decode_images(images, state().config.image_max_side)))
    usage = Usage(prompt_tokens=len(images), total_tokens=len(images))  # one unit per image
    report_usage(entry.config.name, usage)
    data = [Embedding(index=i, embedding=vector.values) for i, vector in enumerate(vectors)]
    return json_response(EmbeddingList(model=entry.config.name, data=data, usage=usage))
