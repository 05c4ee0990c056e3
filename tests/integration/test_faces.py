"""The default face models (MTCNN, dlib) behind gunicorn: faces where there are faces, none elsewhere, and
vectors that tell one person from another at dlib's threshold."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import requests
import skimage.data
from PIL import Image, ImageEnhance, ImageOps

ASTRONAUT_FACE = (181, 62, 268, 172)  # MTCNN's box on the 512 x 512 photo (x1, y1, x2, y2)
SAME_PERSON = 0.6  # dlib's threshold (docs/api.md)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def _astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())


def _faces(url: str, route: str, *images: Image.Image, **fields: object) -> list[list[dict]]:
    files = [("image", (f"{i}.jpg", _jpeg(image), "image/jpeg")) for i, image in enumerate(images)]
    r = requests.post(f"{url}{route}", files=files, data={k: str(v) for k, v in fields.items()}, timeout=300)
    assert r.status_code == 200, r.text
    return [item["faces"] for item in r.json()["data"]]


def test_one_face_on_the_astronaut_and_none_on_the_cat_or_the_coffee(server_url: str) -> None:
    photos = [_astronaut(), Image.fromarray(skimage.data.chelsea()), Image.fromarray(skimage.data.coffee())]
    found = _faces(server_url, "/v1/detect/faces", *photos)
    assert [len(faces) for faces in found] == [1, 0, 0]
    face = found[0][0]
    assert face["score"] > 0.99
    assert np.allclose([face["box"][k] for k in ("x1", "y1", "x2", "y2")], ASTRONAUT_FACE, atol=3), face["box"]
    eyes = face["landmarks"]["left_eye"], face["landmarks"]["right_eye"]
    assert eyes[0]["x"] < eyes[1]["x"] and abs(eyes[0]["y"] - eyes[1]["y"]) < 10


def test_a_photo_above_image_max_side_gets_boxes_in_its_own_pixels(server_url: str) -> None:
    big = _astronaut().resize((2048, 2048), Image.Resampling.BICUBIC)  # seen at 1024: every coordinate x 2 back
    payload = {"image": base64.b64encode(_jpeg(big)).decode()}
    r = requests.post(f"{server_url}/v1/detect/faces", json=payload, timeout=300)
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    assert (item["width"], item["height"]) == (2048, 2048)
    (face,) = item["faces"]
    assert np.allclose([face["box"][k] for k in ("x1", "y1", "x2", "y2")], np.multiply(ASTRONAUT_FACE, 4), atol=16)


def test_embeddings_tell_the_astronaut_from_the_cameraman(server_url: str) -> None:
    astronaut = _astronaut()
    darker_half = ImageEnhance.Brightness(astronaut.resize((256, 256))).enhance(0.6)
    photos = [astronaut, ImageOps.mirror(astronaut), darker_half, Image.fromarray(skimage.data.camera())]
    found = _faces(server_url, "/v1/faces/embeddings", *photos)
    assert [len(faces) for faces in found] == [1, 1, 1, 1]
    vectors = [np.array(faces[0]["embedding"]) for faces in found]
    distances = [float(np.linalg.norm(vectors[0] - v)) for v in vectors[1:]]
    assert distances[0] < SAME_PERSON and distances[1] < SAME_PERSON, distances  # measured 0.19, 0.22
    assert distances[2] > SAME_PERSON + 0.15, distances  # measured 0.84


@pytest.mark.parametrize("route", ["/v1/detect/faces", "/v1/faces/embeddings"])
def test_bad_input_on_a_face_route_is_a_clear_4xx(server_url: str, route: str) -> None:
    r = requests.post(f"{server_url}{route}", json={"image": "bm90IGFuIGltYWdl"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_image"
    body = '{"image": "bm90IGFuIGltYWdl", "score_threshold": 1e999}'  # valid JSON, read as infinity
    r = requests.post(f"{server_url}{route}", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "score_threshold"
