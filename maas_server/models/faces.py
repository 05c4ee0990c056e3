"""Faces: where they are (MTCNN, torch) and whose they are (dlib's face recognition network, not torch).

``face-detection`` (DETECT_FACES) runs facenet-pytorch's MTCNN: three small networks (2 MB in all) that
propose face boxes over an image pyramid, refine them, then score each and place five landmarks (eyes,
nose, mouth corners, in the order api/detect.py names them). ``source`` is the folder that holds
``pnet.pt``, ``rnet.pt`` and ``onet.pt`` (``pkg://facenet_pytorch/data``, MIT), read with
``weights_only=True``.

``face-embedding`` (EMBED_FACES) finds faces with the same MTCNN (its weights always come from
facenet-pytorch), then dlib's 5-point shape predictor aligns each face and dlib's ResNet turns it into
128 numbers. ``source`` is the folder that holds ``shape_predictor_5_face_landmarks.dat`` and
``dlib_face_recognition_resnet_model_v1.dat`` (``pkg://face_recognition_models/models``, CC0). Two
vectors less than :data:`SAME_PERSON` apart (Euclidean) show the same person: dlib's own threshold.
dlib is not torch: it runs on the CPU whatever the device (the dlib-bin wheel has no CUDA), and holds
the GIL while it computes a vector, so the worker's other threads wait for that long (one face at a
time: they run between faces).

MTCNN stacks a batch into one tensor, so only images of one size share a pass: a batch runs one pass
per distinct image size. Its last stage keeps the faces it scores above 0.7 (the cascade's calibrated
threshold): a request's ``score_threshold`` can only be stricter than that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .contract import BatchMethod, Method, ModelDescription
from .image_io import DETECT_FACES, EMBED_FACES, Box, Detected, DetectionQuery, Detections
from .sources import resolve_source

MTCNN_WEIGHTS = "pkg://facenet_pytorch/data"
NETS = ("pnet.pt", "rnet.pt", "onet.pt")
MIN_FACE = 20  # pixels: the smallest face MTCNN looks for (its pyramid's first scale); a smaller image holds none
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)  # P-, R- and O-Net: facenet-pytorch's defaults; the last one is the score floor
PYRAMID_FACTOR = 0.709  # each pyramid level is this much smaller (MTCNN's paper and facenet-pytorch)
SAME_PERSON = 0.6  # dlib: faces whose vectors are closer than this are one person (99.38% on LFW)
DLIB_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")


@dataclass(frozen=True)
class Prepared:
    """An image as MTCNN takes it (height x width x RGB, uint8), and the request's thresholds."""

    pixels: torch.Tensor
    query: DetectionQuery

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]


def prepare(query: DetectionQuery) -> Prepared:
    # The query's image is dropped: a queued item should not keep a second copy of the pixels alive.
    pixels = torch.from_numpy(np.array(query.image.convert("RGB"), dtype=np.uint8))
    return Prepared(pixels, DetectionQuery(None, query.score_threshold, query.iou_threshold, query.max_detections))


class Mtcnn:
    """MTCNN's three networks, and facenet-pytorch's cascade that runs them."""

    def __init__(self, folder: str, device: str) -> None:
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self.device = device
        self.nets = [_load_net(net, Path(folder) / name, device) for net, name in zip((PNet, RNet, ONet), NETS)]

    @torch.no_grad()
    def detect(self, batch: list[Prepared]) -> list[list[Detected]]:
        """Each image's faces, best first, as its query asks (in pixels of the image given; a box may reach past
        the image's edge for a face that touches it)."""
        found: list[list[Detected]] = [[] for _ in batch]
        for size, indices in _by_size(batch).items():
            if min(size) < MIN_FACE:
                continue  # the cascade would find no scale to look at (and fails on an empty pyramid)
            boxes, points = self._cascade(torch.stack([batch[i].pixels for i in indices]))
            for i, image_boxes, image_points in zip(indices, boxes, points):
                found[i] = _selected(np.asarray(image_boxes, np.float32), np.asarray(image_points, np.float32),
                                     batch[i])
        return found

    def _cascade(self, pixels: torch.Tensor) -> tuple[Any, Any]:
        from facenet_pytorch.models.utils.detect_face import detect_face

        boxes, points = detect_face(pixels, MIN_FACE, *self.nets, list(STAGE_THRESHOLDS), PYRAMID_FACTOR, self.device)
        return boxes, points


class FaceDetectionModel:
    """Serves ``/v1/detect/faces``: boxes, scores and five landmarks per face."""

    task = "face-detection"

    def __init__(self, mtcnn: Mtcnn) -> None:
        self.mtcnn = mtcnn

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> FaceDetectionModel:
        _check_float32(config)
        return cls(Mtcnn(resolve_source(config.source), device))

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.mtcnn.device, dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        # Converting a decoded image to a tensor is thread-safe: do it on the request's thread.
        return {DETECT_FACES: BatchMethod(prepare, self.detect, prepare_on_caller=True)}

    def warmup(self) -> None:
        self.detect([prepare(DetectionQuery(Image.new("RGB", (64, 64))))])

    def detect(self, batch: list[Prepared]) -> list[Detections]:
        return [Detections(*item.size, [_clipped(face, *item.size) for face in faces])
                for item, faces in zip(batch, self.mtcnn.detect(batch))]


class FaceEmbeddingModel:
    """Serves ``/v1/faces/embeddings``: MTCNN's faces, each with dlib's 128-d vector."""

    task = "face-embedding"

    def __init__(self, mtcnn: Mtcnn, shapes: Any, recogniser: Any) -> None:
        self.mtcnn = mtcnn
        self.shapes = shapes  # dlib.shape_predictor: five points that align the face for the recogniser
        self.recogniser = recogniser  # dlib.face_recognition_model_v1

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> FaceEmbeddingModel:
        import dlib

        _check_float32(config)
        folder = Path(resolve_source(config.source))
        missing = [name for name in DLIB_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"model {config.name!r}: {folder} lacks {', '.join(missing)}")
        shapes = dlib.shape_predictor(str(folder / DLIB_FILES[0]))
        recogniser = dlib.face_recognition_model_v1(str(folder / DLIB_FILES[1]))
        return cls(Mtcnn(resolve_source(MTCNN_WEIGHTS), device), shapes, recogniser)

    def describe(self) -> ModelDescription:
        # dlib computes on the CPU in float32; only the detector follows the configured device.
        device = "cpu" if self.mtcnn.device == "cpu" else f"{self.mtcnn.device}+cpu"
        return ModelDescription(device=device, dtype="float32", dimensions=128)

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {EMBED_FACES: BatchMethod(prepare, self.embed, prepare_on_caller=True)}

    def warmup(self) -> None:
        self.embed([prepare(DetectionQuery(Image.new("RGB", (64, 64))))])
        self._vector(np.zeros((64, 64, 3), np.uint8), Box(8, 8, 56, 56))  # no face there, but dlib runs once

    def embed(self, batch: list[Prepared]) -> list[Detections]:
        results = []
        for item, faces in zip(batch, self.mtcnn.detect(batch)):
            rgb = item.pixels.numpy()
            # dlib aligns from MTCNN's own box: one clipped at the image's edge would skew the face.
            embedded = [replace(_clipped(f, *item.size), embedding=self._vector(rgb, f.box)) for f in faces]
            results.append(Detections(*item.size, embedded))
        return results

    def _vector(self, rgb: np.ndarray, box: Box) -> tuple[float, ...]:
        import dlib

        rect = dlib.rectangle(round(box.x1), round(box.y1), round(box.x2), round(box.y2))
        return tuple(self.recogniser.compute_face_descriptor(rgb, self.shapes(rgb, rect)))


def _load_net(net: type[torch.nn.Module], path: Path, device: str) -> torch.nn.Module:
    module = net(pretrained=False)  # facenet-pytorch: pretrained=True would read the weights without weights_only
    # weights_only: a model file must never run code when it is read.
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return module.to(device).eval()


def _check_float32(config: Any) -> None:
    # MTCNN's box and landmark arithmetic runs in its networks' dtype: float16 would cost pixels of
    # precision on a 1024-pixel image and save nothing worth having on 2 MB of weights.
    if config.dtype not in ("auto", "float32"):
        raise ValueError(f"model {config.name!r}: face models run in float32; remove dtype = {config.dtype!r}")


def _by_size(batch: list[Prepared]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for index, item in enumerate(batch):
        groups.setdefault(item.size, []).append(index)
    return groups


def _selected(boxes: np.ndarray, points: np.ndarray, item: Prepared) -> list[Detected]:
    """The faces the query keeps: above its score, one of each overlapping pair (its IoU), at most its count."""
    from torchvision.ops import nms  # type: ignore[import-untyped]  # torchvision ships no py.typed

    if len(boxes) == 0:
        return []
    query = item.query
    order = nms(torch.from_numpy(boxes[:, :4]), torch.from_numpy(boxes[:, 4]), query.iou_threshold)  # best first
    kept = [i for i in order.tolist() if boxes[i, 4] >= query.score_threshold][:query.max_detections]
    return [Detected("face", float(boxes[i, 4]), Box(*(float(v) for v in boxes[i, :4])),
                     tuple((float(x), float(y)) for x, y in points[i])) for i in kept]


def _clipped(face: Detected, width: int, height: int) -> Detected:
    """The face with its box inside the image (MTCNN's square boxes may reach past the edge of a face that
    touches it), as clients draw and crop it."""
    box = face.box
    return replace(face, box=Box(min(max(box.x1, 0.0), width), min(max(box.y1, 0.0), height),
                                 min(max(box.x2, 0.0), width), min(max(box.y2, 0.0), height)))
