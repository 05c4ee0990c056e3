"""Scene classification with an operator's Places365 checkpoint (torchvision ResNet-18, 365 classes).

No Places365 weights ship in a package, so this task serves only a checkpoint the operator supplies:
``source`` is the file (the MIT CSAIL release ``resnet18_places365.pth.tar``, or any ``state_dict`` of a
``torchvision.models.resnet18(num_classes=365)``, read with ``weights_only=True``; a ``module.``
prefix from ``DataParallel`` is stripped). Beside it, two optional files of that release:

- ``categories_places365.txt`` ("/a/airfield 0" a line): the class names; without it, ``class_0``...
- ``IO_places365.txt`` ("/a/airfield 2": 1 indoor, 2 outdoor): the top level. An outdoor class is
  "outdoor natural" when its name holds a word of :data:`NATURAL_WORDS`, else "outdoor man-made"
  (Places365's own three-way hierarchy is a spreadsheet, not shipped with the weights). Without the
  file the top level is None.

Answers say ``method: "model"``, with the five best classes as evidence. Without such a model the
server reads a coarse scene off its image classifier and object detector (scene_rules.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .contract import BatchMethod, Method, ModelDescription
from .scene_io import CLASSIFY_SCENE, Scene, SceneEvidence
from .scene_rules import INDOOR, MAN_MADE, NATURAL
from .sources import resolve_source

CLASSES = 365
EVIDENCE = 5
_NATURAL = """badlands bamboo beach butte canyon cave cliff coast coral creek desert field forest glacier
    grotto hayfield ice iceberg islet lagoon lake marsh mountain ocean pasture pond rainforest river rock sky snowfield
    swamp tundra underwater valley volcano waterfall wave wheat"""
NATURAL_WORDS = frozenset(_NATURAL.split())  # words of Places365 names of outdoor classes that are not built


class SceneModel:
    """Serves scenes from a Places365 ResNet-18. Items are decoded RGB ``PIL.Image`` objects."""

    task = "scene-classification"

    def __init__(self, network: torch.nn.Module, labels: list[str], top_levels: list[str | None], *, device: str,
                 dtype: torch.dtype) -> None:
        from torchvision import transforms  # type: ignore[import-untyped]  # torchvision ships no py.typed

        self.network = network
        self.labels = labels
        self.top_levels = top_levels
        self.device = device
        self.torch_dtype = dtype
        # Places365's own evaluation transform: ImageNet's statistics, a 224-pixel centre crop of a 256 resize.
        self.transform = transforms.Compose([
            transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    @classmethod
    def load(cls, config: Any, device: str, dtype: torch.dtype, cache_dir: Path) -> SceneModel:
        from torchvision.models import resnet18  # type: ignore[import-untyped]

        if (config.architecture or "torchvision:resnet18") != "torchvision:resnet18":
            raise ValueError(f"model {config.name!r}: scene classification loads torchvision:resnet18 checkpoints "
                             f"(Places365's release); got architecture {config.architecture!r}")
        path = Path(resolve_source(config.source))
        network = resnet18(num_classes=CLASSES)
        network.load_state_dict(read_state_dict(path))
        labels = read_labels(path.parent / "categories_places365.txt")
        top_levels = read_top_levels(path.parent / "IO_places365.txt", labels)
        return cls(network.to(device=device, dtype=dtype).eval(), labels, top_levels, device=device, dtype=dtype)

    def describe(self) -> ModelDescription:
        return ModelDescription(device=self.device, dtype=str(self.torch_dtype).removeprefix("torch."),
                                labels=tuple(self.labels))

    def batch_methods(self) -> dict[Method[Any, Any], BatchMethod]:
        return {CLASSIFY_SCENE: BatchMethod(self.prepare, self.classify, prepare_on_caller=True)}

    def warmup(self) -> None:
        self.classify([self.prepare(Image.new("RGB", (64, 64)))])

    def prepare(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))  # type: ignore[no-any-return]

    @torch.inference_mode()
    def classify(self, batch: list[torch.Tensor]) -> list[Scene]:
        pixels = torch.stack(batch).to(device=self.device, dtype=self.torch_dtype)
        probs = torch.softmax(self.network(pixels).float(), dim=-1)
        values, order = probs.topk(EVIDENCE, dim=-1)
        return [self._scene(row_order, row_values) for row_order, row_values in zip(order.tolist(), values.tolist())]

    def _scene(self, order: list[int], values: list[float]) -> Scene:
        evidence = [SceneEvidence("places365", self.labels[i], p) for i, p in zip(order, values)]
        best = order[0]
        return Scene(self.top_levels[best], self.labels[best], values[0], "model", evidence)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's weights: a bare state_dict or one under "state_dict", without a "module." prefix."""
    state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    weights = state.get("state_dict", state) if isinstance(state, dict) else state
    return {name.removeprefix("module."): tensor for name, tensor in weights.items()}


def read_labels(path: Path) -> list[str]:
    """Class names from categories_places365.txt ("/a/airfield 0" -> "airfield"; "/b/beach/sand" -> "beach/sand")."""
    if not path.is_file():
        return [f"class_{i}" for i in range(CLASSES)]
    names = [line.split()[0][3:] for line in path.read_text().splitlines() if line.strip()]
    if len(names) != CLASSES:
        raise ValueError(f"{path}: {len(names)} class names, expected {CLASSES}")
    return names


def read_top_levels(path: Path, labels: list[str]) -> list[str | None]:
    """Each class's top level from IO_places365.txt (1 indoor, 2 outdoor), or None for every class without it."""
    if not path.is_file():
        return [None] * len(labels)
    flags = [line.split()[-1] for line in path.read_text().splitlines() if line.strip()]
    if len(flags) != len(labels):
        raise ValueError(f"{path}: {len(flags)} lines, expected {len(labels)}")
    return [INDOOR if flag == "1" else _outdoor(label) for flag, label in zip(flags, labels)]


def _outdoor(label: str) -> str:
    words = set(label.replace("/", " ").replace("_", " ").split())
    return NATURAL if words & NATURAL_WORDS else MAN_MADE
