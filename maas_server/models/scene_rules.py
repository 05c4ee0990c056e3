"""A coarse scene label from what the served vision models see: ImageNet classes and COCO objects. No torch.

No scene model (Places365, CLIP) ships in a package, so :func:`heuristic_scene` reads the scene off two
models the server already has: the image classifier's ImageNet-1k classes that are places (seashore,
library, church, dock...) or things that only stand in one kind of place (four-poster: bedroom), and the
object detector's COCO objects (oven and refrigerator: kitchen; car, bus and traffic light: street).
Each clue votes for a fine label with its score; the fine label with the most votes wins, and its
top level (Places365's: indoor, outdoor natural, outdoor man-made) comes with it. The answer lists the
clues it used (``evidence``), and says ``method: "heuristic"``.

What it cannot tell apart: scenes with no telling class or object (an empty room, a forest path, a
field, an office without a computer in view, a classroom, a road without cars); rooms that share their
objects (a dining room and a kitchen both have tables, a hotel room and a bedroom both have beds); a
picture of a place from the place itself (a poster of a beach). With no clue above the floor it
answers no label rather than a guess.

This module is torch-free so that the wire layer can combine the two models' answers itself.
"""

from __future__ import annotations

from collections import defaultdict

from .image_io import Detections
from .scene_io import Scene, SceneEvidence
from .text_io import Scores

INDOOR, NATURAL, MAN_MADE = "indoor", "outdoor natural", "outdoor man-made"
TOP_LEVELS = (INDOOR, NATURAL, MAN_MADE)

# ImageNet-1k classes (the first name of timm's description) -> (fine label, top level).
IMAGENET_SCENES: dict[str, tuple[str, str]] = {
    # outdoor natural
    "seashore": ("beach", NATURAL), "sandbar": ("beach", NATURAL), "lakeside": ("lake", NATURAL),
    "coral reef": ("underwater", NATURAL), "cliff": ("cliff", NATURAL), "valley": ("valley", NATURAL),
    "alp": ("mountain", NATURAL), "volcano": ("mountain", NATURAL), "promontory": ("coast", NATURAL),
    "geyser": ("hot spring", NATURAL), "mountain tent": ("campsite", NATURAL), "ski": ("ski slope", NATURAL),
    "hay": ("field", NATURAL), "rapeseed": ("field", NATURAL), "daisy": ("field", NATURAL),
    # outdoor man-made
    "dock": ("harbor", MAN_MADE), "pier": ("pier", MAN_MADE), "breakwater": ("harbor", MAN_MADE),
    "boathouse": ("harbor", MAN_MADE), "dam": ("dam", MAN_MADE), "viaduct": ("bridge", MAN_MADE),
    "suspension bridge": ("bridge", MAN_MADE), "steel arch bridge": ("bridge", MAN_MADE),
    "church": ("church", MAN_MADE), "mosque": ("mosque", MAN_MADE), "palace": ("palace", MAN_MADE),
    "castle": ("castle", MAN_MADE), "monastery": ("monastery", MAN_MADE), "stupa": ("temple", MAN_MADE),
    "bell cote": ("church", MAN_MADE), "triumphal arch": ("monument", MAN_MADE), "barn": ("farm", MAN_MADE),
    "greenhouse": ("greenhouse", MAN_MADE), "yurt": ("campsite", MAN_MADE), "fountain": ("plaza", MAN_MADE),
    "park bench": ("park", MAN_MADE), "patio": ("patio", MAN_MADE), "water tower": ("rooftop", MAN_MADE),
    "street sign": ("street", MAN_MADE), "traffic light": ("street", MAN_MADE), "parking meter": ("street", MAN_MADE),
    "streetcar": ("street", MAN_MADE), "cab": ("street", MAN_MADE), "trolleybus": ("street", MAN_MADE),
    "cliff dwelling": ("ruin", MAN_MADE), "lighthouse": ("coast", MAN_MADE), "beacon": ("coast", MAN_MADE),
    "prison": ("prison", MAN_MADE), "mobile home": ("trailer park", MAN_MADE), "picket fence": ("yard", MAN_MADE),
    # indoor
    "library": ("library", INDOOR), "bookshop": ("bookstore", INDOOR), "bookcase": ("library", INDOOR),
    "restaurant": ("restaurant", INDOOR), "bakery": ("bakery", INDOOR), "grocery store": ("supermarket", INDOOR),
    "butcher shop": ("shop", INDOOR), "confectionery": ("shop", INDOOR), "shoe shop": ("shop", INDOOR),
    "toyshop": ("shop", INDOOR), "tobacco shop": ("shop", INDOOR), "barbershop": ("barbershop", INDOOR),
    "cinema": ("movie theater", INDOOR), "home theater": ("living room", INDOOR), "planetarium": ("planetarium",
                                                                                                   INDOOR),
    "four-poster": ("bedroom", INDOOR), "studio couch": ("living room", INDOOR), "wardrobe": ("bedroom", INDOOR),
    "shower curtain": ("bathroom", INDOOR), "bathtub": ("bathroom", INDOOR), "toilet seat": ("bathroom", INDOOR),
    "washbasin": ("bathroom", INDOOR), "refrigerator": ("kitchen", INDOOR), "stove": ("kitchen", INDOOR),
    "microwave": ("kitchen", INDOOR), "dishwasher": ("kitchen", INDOOR), "dining table": ("dining room", INDOOR),
    "desk": ("office", INDOOR), "desktop computer": ("office", INDOOR), "photocopier": ("office", INDOOR),
    "pool table": ("game room", INDOOR), "theater curtain": ("stage", INDOOR), "window shade": ("room", INDOOR),
    "espresso": ("cafe", INDOOR), "coffee mug": ("cafe", INDOOR), "cup": ("cafe", INDOOR),
}

# COCO objects -> (fine label, top level). People, animals that live anywhere and small objects say nothing.
COCO_SCENES: dict[str, tuple[str, str]] = {
    "bed": ("bedroom", INDOOR), "oven": ("kitchen", INDOOR), "refrigerator": ("kitchen", INDOOR),
    "microwave": ("kitchen", INDOOR), "toaster": ("kitchen", INDOOR), "sink": ("kitchen", INDOOR),
    "toilet": ("bathroom", INDOOR), "couch": ("living room", INDOOR), "tvmonitor": ("living room", INDOOR),
    "tv": ("living room", INDOOR), "sofa": ("living room", INDOOR), "remote": ("living room", INDOOR),
    "diningtable": ("dining room", INDOOR), "dining table": ("dining room", INDOOR),
    "laptop": ("office", INDOOR), "keyboard": ("office", INDOOR), "mouse": ("office", INDOOR),
    "book": ("library", INDOOR), "cup": ("cafe", INDOOR), "wine glass": ("restaurant", INDOOR),
    "car": ("street", MAN_MADE), "bus": ("street", MAN_MADE), "truck": ("street", MAN_MADE),
    "motorbike": ("street", MAN_MADE), "motorcycle": ("street", MAN_MADE), "bicycle": ("street", MAN_MADE),
    "traffic light": ("street", MAN_MADE), "stop sign": ("street", MAN_MADE), "fire hydrant": ("street", MAN_MADE),
    "parking meter": ("street", MAN_MADE), "bench": ("park", MAN_MADE), "train": ("railway", MAN_MADE),
    "aeroplane": ("airfield", MAN_MADE), "airplane": ("airfield", MAN_MADE), "boat": ("harbor", MAN_MADE),
    "cow": ("pasture", NATURAL), "sheep": ("pasture", NATURAL), "horse": ("pasture", NATURAL),
    "elephant": ("savanna", NATURAL), "zebra": ("savanna", NATURAL), "giraffe": ("savanna", NATURAL),
    "bear": ("forest", NATURAL), "skis": ("ski slope", NATURAL), "snowboard": ("ski slope", NATURAL),
    "surfboard": ("beach", NATURAL), "kite": ("field", NATURAL),
}

MIN_CLASS_SCORE = 0.05  # an ImageNet class under this is noise among 1000
MIN_OBJECT_SCORE = 0.25  # the detector's own default threshold
MIN_VOTES = 0.10  # a winning fine label with fewer votes than this is no answer


def _imagenet_key(label: str) -> str:
    return label.split(",")[0].strip()


def clues(classes: Scores | None, objects: Detections | None) -> list[SceneEvidence]:
    """The classes and objects that say something about the place, strongest first."""
    found = []
    for label, score in (classes.labels if classes else []):
        if score >= MIN_CLASS_SCORE and _imagenet_key(label) in IMAGENET_SCENES:
            found.append(SceneEvidence("imagenet", _imagenet_key(label), score))
    best: dict[str, float] = {}
    for thing in (objects.objects if objects else []):
        if thing.score >= MIN_OBJECT_SCORE and thing.label in COCO_SCENES:
            best[thing.label] = max(best.get(thing.label, 0.0), thing.score)  # one vote per kind of object
    found += [SceneEvidence("coco", label, score) for label, score in best.items()]
    return sorted(found, key=lambda e: -e.score)


def _place(evidence: SceneEvidence) -> tuple[str, str]:
    table = IMAGENET_SCENES if evidence.source == "imagenet" else COCO_SCENES
    return table[evidence.label]


def heuristic_scene(classes: Scores | None, objects: Detections | None) -> Scene:
    """The scene one image shows, from its ImageNet classes and COCO objects: the fine label with most votes.

    A fine label's votes are the sum of its clues' scores (capped at 1 as its score); its top level is
    the one the table gives it. With no clue, or too few votes, label and top level are None.
    """
    evidence = clues(classes, objects)
    votes: dict[tuple[str, str], float] = defaultdict(float)
    for item in evidence:
        votes[_place(item)] += item.score
    if not votes or max(votes.values()) < MIN_VOTES:
        return Scene(None, None, 0.0, "heuristic", evidence)
    (label, top_level), total = max(votes.items(), key=lambda kv: kv[1])
    used = [item for item in evidence if _place(item) == (label, top_level)]
    others = [item for item in evidence if _place(item) != (label, top_level)]
    return Scene(top_level, label, min(1.0, total), "heuristic", used + others)
