"""Reading text in images: the default OCR model (RapidOCR's PP-OCR networks, inside the rapidocr wheel) through
the runner, on text the tests render themselves (tests/ocr_images.py).

What the model reads is checked as a character error rate under a bound with a margin, never as exact text: a
line can come out a character apart on another CPU. Boxes are checked for their geometry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from maas_server.config import ModelConfig
from maas_server.models import load_model
from maas_server.models.ocr import OCRModel, reading_order
from maas_server.models.ocr_io import READ_TEXT, ReadText, TextLine, TextQuery
from maas_server.runtime.runner import Runner
from tests.ocr_images import CONDITIONS, LINES, LINES_B, MAX_IMAGE_CER, MAX_SET_CER, Condition, cer, normalise

pytestmark = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None,
                                reason="the OCR model's package is missing: make install (rapidocr)")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> OCRModel:
    config = ModelConfig(name="ocr", task="ocr", source="pkg://rapidocr/models")
    loaded = load_model(config, "cpu", None, tmp_path_factory.mktemp("ocr"))
    assert isinstance(loaded, OCRModel)
    return loaded


@pytest.fixture(scope="module")
def readings(model: OCRModel) -> dict[str, ReadText]:
    """Every rendered condition read once, four images a batch through the runner, as the server reads them."""
    runner = Runner("ocr", model, max_batch_size=4, max_wait_ms=0).start()
    try:
        handles = runner.submit_many(READ_TEXT, [TextQuery(c.render()) for c in CONDITIONS])
        return {c.name: handle.result(timeout=600) for c, handle in zip(CONDITIONS, handles)}
    finally:
        runner.stop()


def test_rendered_text_is_read_under_the_error_bound(readings: dict[str, ReadText]) -> None:
    errors = {c.name: cer(c.text, readings[c.name].text) for c in CONDITIONS}
    assert sum(errors.values()) / len(errors) <= MAX_SET_CER, errors
    assert max(errors.values()) <= MAX_IMAGE_CER, errors


def test_the_bound_tells_a_wrong_reading_apart(readings: dict[str, ReadText]) -> None:
    # The same readings scored against the other text: what a reader that saw nothing right would score.
    swapped = [cer("\n".join(LINES_B if c.lines == LINES else LINES), readings[c.name].text) for c in CONDITIONS]
    assert min(swapped) > 5 * MAX_IMAGE_CER


def test_lines_come_in_reading_order_with_polygons_inside_the_image(readings: dict[str, ReadText]) -> None:
    for condition in CONDITIONS:
        result = readings[condition.name]
        image = condition.render()
        assert (result.width, result.height) == image.size
        assert normalise(result.text) == normalise(" ".join(line.text for line in result.lines))
        for line in result.lines:
            assert len(line.box) == 4 and 0 < line.score <= 1
            assert all(-2 <= x <= image.width + 2 and -2 <= y <= image.height + 2 for x, y in line.box)
    upright = readings["clean-28px-dejavu-sans"]
    assert len(upright.lines) == 3
    tops = [min(y for _, y in line.box) for line in upright.lines]
    assert tops == sorted(tops)
    for line, expected in zip(upright.lines, LINES):  # each polygon lies around its own line of text
        assert cer(expected, line.text) <= MAX_IMAGE_CER


def test_a_blank_image_reads_nothing(model: OCRModel) -> None:
    [result] = model.read([model.prepare(TextQuery(Image.new("RGB", (300, 200), (255, 255, 255))))])
    assert result.lines == [] and result.text == ""


def test_the_score_threshold_drops_lines_below_it(model: OCRModel) -> None:
    image = CONDITIONS[0].render()
    [everything] = model.read([model.prepare(TextQuery(image, score_threshold=0.0))])
    best = max(line.score for line in everything.lines)
    [strict] = model.read([model.prepare(TextQuery(image, score_threshold=min(1.0, best + 1e-6)))])
    assert everything.lines and strict.lines == []


def test_polygons_scale_back_to_the_original_image(readings: dict[str, ReadText]) -> None:
    result = readings["clean-28px-aileron"]
    doubled = result.scaled(result.width * 2, result.height * 2)
    assert doubled.text == result.text
    for small, big in zip(result.lines, doubled.lines):
        assert big.box == tuple((2 * x, 2 * y) for x, y in small.box)


def test_reading_order_is_rows_top_down_then_left_to_right() -> None:
    def line(text: str, x: float, y: float, h: float = 20) -> TextLine:
        return TextLine(text, 0.9, ((x, y), (x + 50, y), (x + 50, y + h), (x, y + h)))

    # A title, then a row of two cells whose right one sits 6 px higher, then a footer.
    lines = [line("footer", 0, 200), line("right", 300, 94), line("left", 0, 100), line("title", 0, 0)]
    rows = reading_order(lines)
    assert [[item.text for item in row] for row in rows] == [["title"], ["left", "right"], ["footer"]]


def test_a_source_without_the_three_networks_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "PP-OCRv6_det_small.onnx").write_bytes(b"")
    config = ModelConfig(name="ocr", task="ocr", source=str(tmp_path))
    with pytest.raises(ValueError, match=r"\*cls\*\.onnx"):
        load_model(config, "cpu", None, tmp_path)


def test_conditions_render_the_same_pixels_every_time() -> None:
    degraded = Condition("d", "aileron", 20, rotate=3.0, degraded=True)
    assert degraded.render().tobytes() == degraded.render().tobytes()
