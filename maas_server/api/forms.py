"""OpenAPI pieces the endpoint records of several families share: file parts, multipart forms, examples."""

from __future__ import annotations

from typing import Any

FILE = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
UNIT = {"type": "number", "minimum": 0, "maximum": 1}

# A 2x2 PNG, for request examples that carry an image.
PNG_2X2 = ("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGM8ISfHwMDAxMDAwMDAAAANBAEIfXHKZgAAAABJRU5E"
           "rkJggg==")

MODEL_IN_PATH = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "a configured model name, as listed by GET /v1/models"}


def image_form(fields: dict[str, Any]) -> dict[str, Any]:
    """A multipart form of image file parts plus the route's other fields (`model` and `fields`)."""
    return {
        "type": "object",
        "description": "One or more image files (under `image` or any other part name; their order is kept), "
                       f"and the optional fields `model`, {', '.join(f'`{name}`' for name in fields)}.",
        "properties": {"model": {"type": "string"}, **fields,
                       "image": {"type": "array", "items": FILE, "minItems": 1}},
        "additionalProperties": FILE,
    }


DETECTION_FORM = image_form({"score_threshold": UNIT, "iou_threshold": UNIT,
                             "max_detections": {"type": "integer", "minimum": 1, "maximum": 1000}})

_AUDIO_FORMATS = {"type": "string", "enum": ["json", "text", "srt", "verbose_json", "vtt"], "default": "json"}
_AUDIO_COMMON = {"model": {"type": "string"}, "prompt": {"type": "string", "maxLength": 1000},
                 "temperature": {"type": "number", "minimum": 0, "maximum": 1}, "response_format": _AUDIO_FORMATS}


def audio_form(fields: dict[str, Any], what: str) -> dict[str, Any]:
    """A multipart form of one audio file under `file` plus the common speech fields and `fields`."""
    return {"type": "object", "required": ["file"],
            "description": f"One audio file (WAV, FLAC, MP3, Ogg, WebM, M4A) under `file`, and the optional fields "
                           f"{what}. `json` and `verbose_json` answer JSON; `text`, `srt` and `vtt` answer text/plain.",
            "properties": {"file": FILE, **_AUDIO_COMMON, **fields}, "additionalProperties": False}


def query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    """An optional query parameter (a string, narrowed by `schema`)."""
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string", **schema},
            "description": description}
