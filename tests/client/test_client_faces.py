"""Client.detect_faces, embed_faces and compare_faces, their typed results and notebook view, and
`maas detect-faces`, against a mocked server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import responses

import maas_client as maas
from maas_client.cli import main
from tests.client.client_support import BASE

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
POINTS = {"left_eye": {"x": 205.0, "y": 101.7}, "right_eye": {"x": 246.8, "y": 103.7},
          "nose": {"x": 224.7, "y": 129.0}, "mouth_left": {"x": 201.7, "y": 139.2},
          "mouth_right": {"x": 245.3, "y": 141.9}}
FACE = {"score": 0.9999, "box": {"x1": 181.0, "y1": 62.0, "x2": 268.0, "y2": 172.0}, "landmarks": POINTS,
        "embedding": None}
MODELS = {"object": "list", "data": [
    {"id": "mtcnn", "object": "model", "created": 1, "owned_by": "maas", "task": "face-detection",
     "endpoints": ["/v1/detect/faces"], "device": "cpu", "dtype": "float32", "ready": True},
    {"id": "dlib-face-recognition", "object": "model", "created": 1, "owned_by": "maas", "task": "face-embedding",
     "endpoints": ["/v1/faces/embeddings"], "device": "cpu", "dtype": "float32", "ready": True}]}


def faces_answer(*faces_per_image: list[dict], model: str = "mtcnn") -> dict:
    data = [{"index": i, "width": 512, "height": 512, "faces": faces} for i, faces in enumerate(faces_per_image)]
    return {"object": "list", "model": model, "data": data,
            "usage": {"prompt_tokens": len(data), "total_tokens": len(data)}}


def with_vector(*values: float) -> dict:
    return {**FACE, "embedding": list(values)}


@pytest.fixture
def faces_server(mocked: responses.RequestsMock) -> responses.RequestsMock:
    mocked.get(f"{BASE}/v1/models", json=MODELS)
    return mocked


def test_detect_faces_uploads_images_and_thresholds_and_returns_typed_faces(
    faces_server: responses.RequestsMock, client: maas.Client, tmp_path: Path
) -> None:
    faces_server.post(f"{BASE}/v1/detect/faces", json=faces_answer([FACE], []))
    path = tmp_path / "me.jpg"
    path.write_bytes(JPEG)
    result = client.detect_faces([path, io.BytesIO(PNG)], score_threshold=0.9, max_detections=3)
    body = faces_server.calls[-1].request.body
    assert isinstance(body, bytes) and body.count(b'name="image"') == 2 and b'filename="me.jpg"' in body
    assert b'name="model"\r\n\r\nmtcnn' in body and b'name="score_threshold"\r\n\r\n0.9' in body
    assert b'name="max_detections"\r\n\r\n3' in body and b"iou_threshold" not in body  # unset: the server's
    assert isinstance(result, maas.FaceDetections) and result.model == "mtcnn"
    (face,) = result.faces
    assert isinstance(face, maas.Face) and face.score == 0.9999 and face.embedding is None
    assert (face.box.width, face.box.height) == (87.0, 110.0)
    assert face.landmarks is not None and face.landmarks["nose"] == maas.Point(x=224.7, y=129.0)
    assert result.data[1].faces == []


def test_embed_faces_posts_to_the_embeddings_route_with_its_default_model(
    faces_server: responses.RequestsMock, client: maas.Client
) -> None:
    faces_server.post(f"{BASE}/v1/faces/embeddings", json=faces_answer([with_vector(0.0, 0.3, 0.4)]))
    result = client.embed_faces(JPEG)
    assert b'name="model"\r\n\r\ndlib-face-recognition' in faces_server.calls[-1].request.body
    assert result.faces[0].embedding == [0.0, 0.3, 0.4]


def test_face_distance_is_euclidean_and_needs_two_vectors() -> None:
    a, b = maas.Face.model_validate(with_vector(0.0, 0.0)), maas.Face.model_validate(with_vector(0.3, 0.4))
    assert a.distance(b) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="embed_faces"):
        a.distance(maas.Face.model_validate(FACE))
    with pytest.raises(ValueError, match="size"):
        a.distance(maas.Face.model_validate(with_vector(1.0)))


@pytest.mark.parametrize("second, distance, same", [((0.3, 0.4), 0.5, True), ((0.6, 0.8), 1.0, False)])
def test_compare_faces_sends_both_photos_in_one_call(
    faces_server: responses.RequestsMock, client: maas.Client, second: tuple[float, float], distance: float,
    same: bool
) -> None:
    answer = faces_answer([with_vector(0.0, 0.0), with_vector(9.0, 9.0)], [with_vector(*second)])
    faces_server.post(f"{BASE}/v1/faces/embeddings", json=answer)
    result = client.compare_faces(JPEG, io.BytesIO(PNG))
    assert faces_server.calls[-1].request.body.count(b'name="image"') == 2
    assert isinstance(result, maas.FaceComparison)
    assert (result.distance, result.same_person, result.threshold) == (pytest.approx(distance), same, 0.6)
    assert result.a.embedding == [0.0, 0.0]  # the best (first) face of each photo
    assert not client.compare_faces(JPEG, PNG, threshold=distance).same_person  # strictly closer than it


def test_compare_faces_without_a_face_says_which_photo(
    faces_server: responses.RequestsMock, client: maas.Client
) -> None:
    faces_server.post(f"{BASE}/v1/faces/embeddings", json=faces_answer([with_vector(0.0)], []))
    with pytest.raises(maas.MaasError, match="no face found in image b"):
        client.compare_faces(JPEG, PNG, model="dlib-face-recognition")


def test_the_notebook_view_draws_boxes_and_landmarks_over_the_uploaded_image(
    faces_server: responses.RequestsMock, client: maas.Client
) -> None:
    faces_server.post(f"{BASE}/v1/detect/faces", json=faces_answer([FACE], []))
    result = client.detect_faces([PNG, b"II*\x00tiff"], model="mtcnn")
    page = result._repr_html_()
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page
    assert 'viewBox="0 0 512 512"' in page and '<rect x="181.0" y="62.0" width="87.0" height="110.0"' in page
    assert page.count("<circle") == 5 and "1 face (1.00)" in page and "0 faces" in page
    assert "image/tiff" not in page  # not something a browser shows: drawn on grey instead
    assert result.data[0]._repr_html_().count("<circle") == 5


def test_cli_detect_faces_prints_scores_and_boxes(
    faces_server: responses.RequestsMock, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_BASE_URL", BASE)
    faces_server.post(f"{BASE}/v1/detect/faces", json=faces_answer([FACE], []))
    photos = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for photo in photos:
        photo.write_bytes(JPEG)
    assert main(["detect-faces", *map(str, photos), "--score-threshold", "0.95"]) == 0
    out = capsys.readouterr().out
    assert out == f"# {photos[0]} (512x512)\n 0.9999  face 181 62 268 172\n\n# {photos[1]} (512x512)\n(no face found)\n"
    assert b'name="score_threshold"\r\n\r\n0.95' in faces_server.calls[-1].request.body
    assert main(["detect-faces", str(photos[0]), "--json"]) == 0
    assert '"left_eye"' in capsys.readouterr().out
