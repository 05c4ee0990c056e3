"""Reading text in images (OCR): RapidOCR's PP-OCR networks on ONNX Runtime.

``source`` is a folder holding the three ONNX networks of a PP-OCR pipeline: a text detector
(``*det*.onnx``: where lines are, as polygons), a direction classifier (``*cls*.onnx``: whether a
line is upside down) and a recogniser (``*rec*.onnx``: its characters, whose alphabet the file
carries). The default, ``pkg://rapidocr/models``, is the set inside the ``rapidocr`` wheel:
PP-OCRv6 small detection and recognition, PP-OCR mobile v2 direction (Baidu's PaddleOCR weights,
Apache-2.0). Its recogniser reads Chinese and Latin script, English included.

ONNX Runtime runs on the CPU whatever the device the config asks for, with as many threads as the
machine has cores for each image. A batch is read one image after another: the detector's input is
each image at its own size, so images do not share a pass.

Lines come back in reading order: rows top to bottom (a line whose vertical centre lies inside a
row's first line joins that row), and lines of a row left to right. The full text joins the lines
of a row with a space and rows with a newline. A page turned upside down or a quarter turn is read
line by line, but its lines come out in the order the image's axes give (last first, when clockwise).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .contract import BatchMethod, Method, ModelDescription
from .ocr_io import READ_TEXT, ReadText, TextLine, TextQuery
from .sources import resolve_source

log = logging.getLogger("maas.models")

ROLES = {"Det": "det", "Cls": "cls", "Rec": "rec"}  # RapidOCR's stage -> the word its model file's name holds


def network_files(folder: Path) -> dict[str, Path]:
    """The detector, direction classifier and recogniser in `folder`, by RapidOCR stage; one ONNX file each."""
    found: dict[str, Path] = {}
    for stage, word in ROLES.items():
        matches = sorted(p for p in folder.glob("*.onnx") if word in p.name.lower())
        if len(matches) != 1:
            named = ", ".join(p.name for p in matches) or "none"
            raise ValueError(f"{folder}: an OCR source holds one *{word}*.onnx network ({stage}); found {named}")
        found[stage] = matches[0]
    return found


class OCRModel:
    """Serves ``/v1/ocr``. Items are :class:`TextQuery` objects (a decoded RGB image each)."""

    task = "ocr"

    def __init__(self, engine: Any) -> None:
        self.engine = engine  # a rapidocr.RapidOCR

    @classmethod
    def load(cls, config: Any, device: str, dtype: Any, cache_dir: Path) -> OCRModel:
        from rapidocr import RapidOCR  # here: importing it loads OpenCV and ONNX Runtime

        files = network_files(Path(resolve_source(config.source)))
        if device != "cpu":
            log.warning("%s runs on ONNX Runtime's CPU provider (device %s is not used)", config.name, device)
        params: dict[str, Any] = {f"{stage}.model_path": str(path) for stage, path in files.items()}
        # Quiet: RapidOCR logs every file it checks, and a warning for each image without text.
        params["Global.log_level"] = "error"
        # Every line comes back; the request's score_threshold filters (RapidOCR's own default drops < 0.5).
        params["Global.text_score"] = 0.0
        return cls(RapidOCR(params=params))

    def describe(self) -> ModelDescription:
        return ModelDescription(device="cpu", dtype="float32")

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        # Turning the PIL image into the BGR array OpenCV takes is thread-safe: do it on request threads.
        return {READ_TEXT: BatchMethod(self.prepare, self.read, prepare_on_caller=True)}

    def warmup(self) -> None:
        # A blank image stops after the detector: draw a word, so that every network has run once.
        from PIL import ImageDraw

        image = Image.new("RGB", (160, 48), (255, 255, 255))
        ImageDraw.Draw(image).text((10, 10), "maas", fill=(0, 0, 0), font_size=24)
        self.read([self.prepare(TextQuery(image))])

    def prepare(self, query: TextQuery) -> tuple[np.ndarray, float]:
        rgb = np.asarray(query.image.convert("RGB"))
        return np.ascontiguousarray(rgb[:, :, ::-1]), query.score_threshold  # OpenCV's channel order

    def read(self, batch: list[tuple[np.ndarray, float]]) -> list[ReadText]:
        """The lines of each image, in reading order, with the text they make."""
        return [self._read_one(pixels, threshold) for pixels, threshold in batch]

    def _read_one(self, pixels: np.ndarray, threshold: float) -> ReadText:
        height, width = pixels.shape[:2]
        output = self.engine(pixels)
        # Nothing found gives an empty output, and no recognised line the detector's output alone.
        boxes, texts, scores = (getattr(output, name, None) for name in ("boxes", "txts", "scores"))
        found = zip(boxes, texts, scores) if boxes is not None and texts and scores else ()
        lines = [TextLine(text, float(score), tuple((float(x), float(y)) for x, y in np.asarray(box).tolist()))
                 for box, text, score in found if score >= threshold and text.strip()]
        rows = reading_order(lines)
        return ReadText(width, height, [line for row in rows for line in row],
                        "\n".join(" ".join(line.text for line in row) for row in rows))


def reading_order(lines: list[TextLine]) -> list[list[TextLine]]:
    """Lines grouped into rows, top to bottom, and each row left to right.

    A row starts at the highest line not yet placed; a line joins it when its vertical centre lies
    between that line's top and bottom (so a slightly tilted or taller neighbour still counts).
    """
    def span(line: TextLine) -> tuple[float, float]:
        ys = [y for _, y in line.box]
        return min(ys), max(ys)

    def left(line: TextLine) -> float:
        return min(x for x, _ in line.box)

    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda item: sum(span(item)) / 2):
        centre = sum(span(line)) / 2
        if rows and span(rows[-1][0])[0] <= centre <= span(rows[-1][0])[1]:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=left) for row in rows]
