"""The ``maas`` command: each client method from the shell.

::

    maas generate "Once upon a time" --max-tokens 40 --stream
    maas chat "Hi" --system "Answer briefly."          # or: echo "Hi" | maas chat
    maas chat "Name a city and its country" --response-format city.schema.json
    maas chat "Weather in Paris?" --tools tools.json   # prints the tool calls the model makes
    maas embed "first text" "second text"
    maas classify-text "I love it"                      # sentiment: negative, neutral, positive
    maas classify-text "The striker scored" --labels sports cooking
    maas classify-image cat.jpg --explain cat-heatmap.png
    maas entities "Angela Merkel visited Paris in 2019."   # or: maas entities < article.txt
    maas redact "Mail Ada at ada@example.com"          # -> Mail <PERSON> at <EMAIL_ADDRESS>
    maas detect-objects street.jpg --score-threshold 0.4 --draw street-boxes.png
    maas detect-faces photo.jpg --draw faces.png
    maas compare-faces me.jpg passport.jpg
    maas ocr invoice.png                                # the text in reading order; --lines: with scores
    maas srl "The window was broken by the boy."        # each verb's roles, AllenNLP's description
    maas scene kitchen.jpg
    maas transcribe meeting.wav --timestamps
    maas translate interview-fr.mp3
    maas models
    maas usage --since 2026-01-01

Every command takes ``--base-url``, ``--api-key`` (else ``MAAS_BASE_URL``/``MAAS_API_KEY``),
``--timeout``, ``--max-retries`` (0: fail at once) and ``--json`` (print the server's JSON instead
of text); all but ``models`` and ``usage`` take ``--model``. ``--draw`` and ``--explain`` write PNG
files; drawing needs Pillow, which the client does not install (``pip install pillow``). Exit codes:
0 done (a reader that stopped reading, as ``| head`` does, included), 1 the call failed (the reason
on stderr), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from ._version import __version__
from .client import Client
from .errors import MaasError
from .types import (
    Box,
    Classification,
    Entities,
    FaceComparison,
    FaceDetections,
    ModelInfo,
    ObjectDetections,
    PiiResults,
    RoleLabellings,
    Scenes,
    TextReadings,
    Tool,
    ToolCall,
    Transcription,
    UsageReport,
)

__all__ = ["main"]

Command = Callable[[Client, argparse.Namespace], None]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line in ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        client = Client(base_url=args.base_url, api_key=args.api_key, timeout=args.timeout,
                        max_retries=args.max_retries)
    except (MaasError, ValueError) as exc:
        return _fail(exc, 2)
    try:
        with client:
            args.command(client, args)
        return 0
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped reading (`| head`): it has what it wanted, so this is success, as for
        # other Unix tools. Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MaasError as exc:
        return _fail(_ErrorForTheCommandLine(exc), 1)
    except _UsageError as exc:
        return _fail(exc, 2)
    except OSError as exc:  # e.g. an image path that does not exist
        return _fail(exc, 2)


class _UsageError(Exception):
    """The arguments cannot be run as given."""


def _fail(exc: BaseException, code: int) -> int:
    print(f"maas: error: {exc}", file=sys.stderr)
    return code


# The client's messages name its Python API; from the shell, the same advice names the flags.
# tests/client/test_client_cli.py checks that no error the client raises keeps a Python spelling.
_PYTHON_TO_FLAGS = (
    ("pass a larger timeout=, e.g. client.with_options(timeout=...)", "pass a larger --timeout SECONDS"),
    ("client.models() lists them", "`maas models` lists them"),
    ("api_key= or MAAS_API_KEY", "--api-key or MAAS_API_KEY"),
    ("raise max_retries", "raise --max-retries"),
    ("base_url (or MAAS_BASE_URL)", "--base-url (or MAAS_BASE_URL)"),
    ("and the base URL", "and --base-url"),
    ("pass model= explicitly, e.g. model=", "pass --model, e.g. --model "),
    ("pass model= explicitly", "pass --model"),
)


class _ErrorForTheCommandLine(Exception):
    """A client error whose message names the command's flags instead of the Python API."""

    def __init__(self, error: MaasError) -> None:
        text = str(error)
        for python, flags in _PYTHON_TO_FLAGS:
            text = text.replace(python, flags)
        super().__init__(text)


# ---------------------------------------------------------------------- commands


def _generate(client: Client, args: argparse.Namespace) -> None:
    prompt = _text_or_stdin(args.prompt, "a prompt")
    _print_text(functools.partial(client.generate, prompt, **_sampling(args)), args)


def _chat(client: Client, args: argparse.Namespace) -> None:
    options: dict[str, Any] = {}
    if args.response_format is not None:
        options["response_format"] = _response_format(args.response_format)
    if args.tools is not None:
        options["tools"] = _tools(args.tools)
    messages = [{"role": "system", "content": args.system}] if args.system else []
    texts = args.messages or [_text_or_stdin(None, "a message")]
    messages += [{"role": "user", "content": text} for text in texts]
    _print_text(functools.partial(client.chat, messages, **_sampling(args), **options), args)


def _embed(client: Client, args: argparse.Namespace) -> None:
    result = client.embed(args.texts, model=args.model)
    _print(result, args.json, lambda r: "\n".join(json.dumps(v) for v in r.vectors))


def _classify_text(client: Client, args: argparse.Namespace) -> None:
    result = client.classify_text(args.texts, labels=args.labels, top_k=args.top_k, model=args.model,
                                  explain=args.explain)
    _print(result, args.json, lambda r: _classification_text(r, args.texts))


def _classify_image(client: Client, args: argparse.Namespace) -> None:
    explain = args.explain is not None
    if explain and len(args.images) != 1:
        raise _UsageError("--explain draws one image: give one PATH")
    result = client.classify_image(args.images, top_k=args.top_k, model=args.model, explain=explain,
                                   overlay=explain)
    _print(result, args.json, lambda r: _classification_text(r, args.images))
    if explain:
        _write_overlay(result, args.explain)


def _entities(client: Client, args: argparse.Namespace) -> None:
    texts = args.texts or [_text_or_stdin(None, "a text")]
    result = client.extract_entities(texts, model=args.model, aggregation=args.aggregation)
    _print(result, args.json, lambda r: _entities_text(r, texts))


def _redact(client: Client, args: argparse.Namespace) -> None:
    texts = args.texts or [_text_or_stdin(None, "a text")]
    if args.detect:
        found = client.detect_pii(texts, types=args.types, model=args.model, include_text=True)
        _print(found, args.json, _pii_text)
        return
    result = client.redact(texts, style="mask" if args.mask else "type", mask_char=args.mask, types=args.types,
                           model=args.model)
    _print(result, args.json, lambda r: "\n".join(text or "" for text in r.redacted_texts))


def _ocr(client: Client, args: argparse.Namespace) -> None:
    result = client.read_text(args.images, score_threshold=args.score_threshold, model=args.model)
    _print(result, args.json, lambda r: _readings_text(r, args.images, args.lines))


def _srl(client: Client, args: argparse.Namespace) -> None:
    texts = args.texts or [_text_or_stdin(None, "a text")]
    result = client.label_roles(texts, model=args.model)
    _print(result, args.json, _roles_text)


def _scene(client: Client, args: argparse.Namespace) -> None:
    result = client.classify_scene(args.images, model=args.model)
    _print(result, args.json, lambda r: _scenes_text(r, args.images))


def _transcribe(client: Client, args: argparse.Namespace) -> None:
    result = client.transcribe(args.file, model=args.model, language=args.language, prompt=args.prompt,
                               words=args.words)
    _print(result, args.json, lambda r: _transcription_text(r, args.timestamps))


def _translate(client: Client, args: argparse.Namespace) -> None:
    result = client.translate(args.file, model=args.model, prompt=args.prompt)
    _print(result, args.json, lambda r: _transcription_text(r, args.timestamps))


def _detect_objects(client: Client, args: argparse.Namespace) -> None:
    pillow = _drawing(args)  # before the call: a missing Pillow should not cost one
    result = client.detect_objects(args.images, score_threshold=args.score_threshold,
                                   iou_threshold=args.iou_threshold, max_detections=args.max_detections,
                                   model=args.model)
    _print(result, args.json, lambda r: _detections_text(r, args.images))
    if pillow is not None and result.data:
        _draw_boxes(pillow, args.images[0], [(f"{o.label} {o.score:.2f}", o.box) for o in result.data[0].objects],
                    args.draw)


def _detect_faces(client: Client, args: argparse.Namespace) -> None:
    pillow = _drawing(args)
    result = client.detect_faces(args.images, score_threshold=args.score_threshold,
                                 max_detections=args.max_detections, model=args.model)
    _print(result, args.json, lambda r: _faces_text(r, args.images))
    if pillow is not None and result.data:
        _draw_boxes(pillow, args.images[0], [(f"face {f.score:.2f}", f.box) for f in result.data[0].faces],
                    args.draw)


def _compare_faces(client: Client, args: argparse.Namespace) -> None:
    result = client.compare_faces(args.a, args.b, **({} if args.threshold is None else {"threshold": args.threshold}),
                                  model=args.model)
    _print(result, args.json, lambda r: _comparison_text(r, args.a, args.b))


def _models(client: Client, args: argparse.Namespace) -> None:
    models = client.models()
    if args.json:
        data = [info.model_dump(mode="json", exclude_unset=True) for info in models]
        print(json.dumps({"object": "list", "data": data}, indent=2))
    else:
        print(_models_table(models))


def _usage(client: Client, args: argparse.Namespace) -> None:
    _print(client.usage(since=args.since), args.json, _usage_table)


# ---------------------------------------------------------------------- output


def _print_text(call: Callable[..., Any], args: argparse.Namespace) -> None:
    """Print a generate/chat result's text, or its chunks as they come with --stream."""
    if args.stream:
        with call(stream=True) as stream:
            _print_stream(stream, args.json)
    else:
        _print(call(stream=False), args.json, _reply_text)


def _print(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    print(_json(result, indent=2) if as_json else text(result))


def _reply_text(result: Any) -> str:
    """A reply's text, then one line per tool call it makes (chat with --tools)."""
    calls = getattr(result, "tool_calls", [])
    return "\n".join(([result.text] if result.text or not calls else []) + [_call_text(c) for c in calls])


def _print_stream(stream: Any, as_json: bool) -> None:
    if as_json:  # one chunk per line (JSON Lines), as the server sent them
        for chunk in stream:
            print(_json(chunk), flush=True)
        return
    calls: list[ToolCall] = []
    for chunk in stream:
        if chunk.text:
            print(chunk.text, end="", flush=True)
        for choice in getattr(chunk, "choices", [])[:1]:  # a chat chunk's tool calls arrive whole
            calls += getattr(getattr(choice, "delta", None), "tool_calls", None) or []
    print()
    for call in calls:
        print(_call_text(call))


def _call_text(call: ToolCall) -> str:
    """``-> get_weather(city="Paris", days=3)``: the call as a reader would write it."""
    try:
        arguments = json.loads(call.function.arguments)
    except ValueError:  # the model's arguments are not JSON: show them as they came
        return f"-> {call.function.name}({call.function.arguments})"
    if not isinstance(arguments, dict):
        return f"-> {call.function.name}({json.dumps(arguments)})"
    return f"-> {call.function.name}({', '.join(f'{k}={json.dumps(v)}' for k, v in arguments.items())})"


def _json(result: BaseModel, indent: int | None = None) -> str:
    # exclude_unset: the fields the server sent (unknown ones included), not our defaults.
    return result.model_dump_json(exclude_unset=True, indent=indent)


def _classification_text(result: Classification, inputs: Sequence[str]) -> str:
    blocks = []
    for item in result.data:
        lines = [f"{score.score:7.4f}  {score.label}" for score in item.labels]
        if item.explanation is not None and item.explanation.tokens is not None:
            weights = " ".join(f"{t.text}({t.weight:+.2f})" for t in item.explanation.tokens)
            lines.append(f"why {item.explanation.label}: {weights}")
        if len(result.data) > 1 and item.index < len(inputs):
            lines.insert(0, f"# {inputs[item.index]}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _pii_text(result: PiiResults) -> str:
    """One line per span: its characters, type, score and text; one block per input."""
    blocks = []
    for item in result.data:
        lines = [f"{e.start:>5}:{e.end:<5}  {e.type:<14}  {e.score:.2f}  {e.text}" for e in item.entities]
        blocks.append("\n".join(lines or ["(no personal data found)"]))
    return "\n\n".join(blocks)


def _readings_text(result: TextReadings, inputs: Sequence[str], lines: bool) -> str:
    """Each image's text; with `lines`, one line per text line with its score."""
    return _per_image(result.data, inputs, lambda item: (
        [f"{line.score:.2f}  {line.text}" for line in item.lines] if lines else item.text.splitlines())
        or ["(no text)"])


def _roles_text(result: RoleLabellings) -> str:
    """AllenNLP's description of each verb, one line each; a blank line between texts."""
    return "\n\n".join("\n".join(verb.description for verb in item.verbs) or "(no verbs)" for item in result.data)


def _scenes_text(result: Scenes, inputs: Sequence[str]) -> str:
    """One line per image: top level, label and score, and the evidence behind it."""
    rows = []
    for item in result.data:
        scene = f"{item.top_level}: {item.label} {item.score:.2f}" if item.label else "(no telling class or object)"
        evidence = ", ".join(f"{e.label} {e.score:.2f}" for e in item.evidence[:4])
        name = inputs[item.index] if item.index < len(inputs) else str(item.index)
        rows.append(f"{name}\t{scene}\t[{item.method}{': ' + evidence if evidence else ''}]")
    return "\n".join(rows)


def _entities_text(result: Entities, inputs: Sequence[str]) -> str:
    """One line per entity: its characters, label and text (and score when the model gives one)."""
    blocks = []
    for item in result.data:
        lines = [
            f"{e.start:>5}:{e.end:<5}  {e.label:<12}  {e.text}" + (f"  ({e.score:.3f})" if e.score is not None else "")
            for e in item.entities
        ] or ["(no entities)"]
        if len(result.data) > 1 and item.index < len(inputs):
            lines.insert(0, f"# {inputs[item.index]}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class _Image(Protocol):
    """What a per-image result row has in common (ObjectDetections' and FaceDetections' items)."""

    @property
    def index(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


def _detections_text(result: ObjectDetections, inputs: Sequence[str]) -> str:
    """One line per object: score, label and box (x1 y1 x2 y2, in the image's pixels)."""
    return _per_image(result.data, inputs, lambda item: [
        f"{o.score:7.4f}  {o.label:<14} {o.box.x1:.0f} {o.box.y1:.0f} {o.box.x2:.0f} {o.box.y2:.0f}"
        for o in item.objects] or ["(nothing found)"])


def _faces_text(result: FaceDetections, inputs: Sequence[str]) -> str:
    """One line per face: score and box (x1 y1 x2 y2, in the image's pixels), as detect-objects prints them."""
    return _per_image(result.data, inputs, lambda item: [
        f"{f.score:7.4f}  face {f.box.x1:.0f} {f.box.y1:.0f} {f.box.x2:.0f} {f.box.y2:.0f}"
        for f in item.faces] or ["(no face found)"])


def _per_image(data: Sequence[_Image], inputs: Sequence[str], lines_of: Callable[[Any], list[str]]) -> str:
    """A block of lines per image, headed by its file name and size when there are several."""
    blocks = []
    for item in data:
        lines = lines_of(item)
        if len(data) > 1 and item.index < len(inputs):
            lines.insert(0, f"# {inputs[item.index]} ({item.width}x{item.height})")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _transcription_text(result: Transcription, timed: bool) -> str:
    if not timed:
        return result.text
    return "\n".join(f"[{s.start:7.2f} - {s.end:7.2f}] {s.text.strip()}" for s in result.segments)


def _comparison_text(result: FaceComparison, a: str, b: str) -> str:
    verdict = "the same person" if result.same_person else "different people"
    return f"{a} vs {b}: distance {result.distance:.3f} -> {verdict} (threshold {result.threshold:g})"


def _usage_table(report: UsageReport) -> str:
    """One row per model, then the total; the numbers right-aligned."""
    head = ("MODEL", "REQUESTS", "ERRORS", "PROMPT_TOKENS", "COMPLETION_TOKENS", "TOTAL_TOKENS", "MEAN_MS")
    rows: list[tuple[str, ...]] = [(row.model or "-", str(row.requests), str(row.errors), str(row.prompt_tokens),
             str(row.completion_tokens), str(row.total_tokens), f"{row.mean_latency_ms:.1f}") for row in report.data]
    if len(rows) > 1:
        rows.append(("(all)", *(str(sum(getattr(r, f) for r in report.data)) for f in (
            "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens")), "-"))
    widths = [max(len(row[column]) for row in [head, *rows]) for column in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if column == 0 else cell.rjust(w)
                       for column, (cell, w) in enumerate(zip(row, widths))) for row in [head, *rows]]
    key = report.key or "(no key)"
    since = "all time" if report.since is None else f"since {_utc(report.since)}"
    return "\n".join([f"usage of {key}, {since}", *lines] if rows else [f"usage of {key}, {since}: no calls"])


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _models_table(models: Sequence[ModelInfo]) -> str:
    rows = [("ID", "TASK", "READY", "DEVICE", "ENDPOINTS")]
    for info in models:
        ready = "-" if info.ready is None else ("yes" if info.ready else "no")
        rows.append(
            (info.id, info.task or "-", ready, info.device or "-", " ".join(info.endpoints or []) or "-")
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        for row in rows
    )


# ---------------------------------------------------------------------- pictures

# Box colours, one per label in order of appearance; each label's text is black or white, whichever
# stands out more on its colour.
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))


def _pillow() -> Any:
    """PIL's Image, ImageDraw and ImageFont modules, imported only to draw: the client does not depend on Pillow."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise _UsageError("drawing needs Pillow, which maas-kit does not install: pip install pillow") from None
    return argparse.Namespace(Image=Image, ImageDraw=ImageDraw, ImageFont=ImageFont)


def _drawing(args: argparse.Namespace) -> Any:
    """Pillow's modules when the command draws (``--draw``), else ``None``."""
    if args.draw is None:
        return None
    if len(args.images) != 1:
        raise _UsageError("--draw draws one image: give one PATH")
    return _pillow()


def _draw_boxes(pil: Any, image_path: str, boxes: Sequence[tuple[str, Box]], out: str) -> None:
    """Write ``image_path`` as a PNG at ``out`` with each box outlined and its label on a filled tab above it."""
    with pil.Image.open(image_path) as opened:
        image = opened.convert("RGB")
    draw = pil.ImageDraw.Draw(image)
    size = max(12, round(min(image.size) / 40))
    font = pil.ImageFont.load_default(size=size)
    line, pad = max(2, round(min(image.size) / 250)), max(2, size // 5)
    colours: dict[str, tuple[int, int, int]] = {}
    for label, box in boxes:
        name = label.rsplit(" ", 1)[0]
        colour = colours.setdefault(name, _PALETTE[len(colours) % len(_PALETTE)])
        draw.rectangle((box.x1, box.y1, box.x2, box.y2), outline=colour, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        tab_height = bottom - top + 2 * pad
        # Above the box where there is room, else just inside its top edge.
        y = box.y1 - tab_height if box.y1 >= tab_height else box.y1
        x = min(box.x1, max(0, image.width - (right - left) - 2 * pad))
        draw.rectangle((x, y, x + right - left + 2 * pad, y + tab_height), fill=colour)
        draw.text((x + pad - left, y + pad - top), label, font=font, fill=_text_colour(colour))
    image.save(out, format="PNG")
    print(f"drew {len(boxes)} box(es) on {out}", file=sys.stderr)


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 140 else (255, 255, 255)


def _write_overlay(result: Classification, out: str) -> None:
    """Write the heatmap the server drew over the image (``explanation.overlay_png``) as a PNG file."""
    explanation = result.data[0].explanation if result.data else None
    overlay = explanation.overlay if explanation is not None else None
    if explanation is None or overlay is None:
        raise MaasError("the server sent no heatmap overlay (explain_overlay); is it a maas server?")
    Path(out).write_bytes(overlay)
    print(f"heatmap for {explanation.label!r} written to {out}", file=sys.stderr)


# ---------------------------------------------------------------------- arguments


def _json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except ValueError as exc:
        raise _UsageError(f"{path} is not JSON ({exc}); {what}") from None


def _response_format(value: str) -> dict[str, Any]:
    """``json`` (any JSON object), or a JSON schema file (OpenAI's whole ``response_format`` also does)."""
    if value == "json":
        return {"type": "json_object"}
    schema = _json_file(value, "--response-format takes `json` or a JSON schema file")
    if not isinstance(schema, dict):
        raise _UsageError(f"{value} holds no JSON schema (an object)")
    if schema.get("type") in ("json_schema", "json_object"):
        return schema
    name = re.sub(r"[^A-Za-z0-9_-]", "_", Path(value).name.split(".")[0])[:64] or "reply"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _tools(path: str) -> list[Tool]:
    """OpenAI tool definitions: a JSON list of them, one of them, or ``{"tools": [...]}``."""
    tools = _json_file(path, "--tools takes a JSON file of OpenAI tool definitions")
    if isinstance(tools, dict):
        tools = tools.get("tools", [tools])
    try:
        return [Tool.model_validate(tool) for tool in (tools if isinstance(tools, list) else [tools])]
    except ValidationError:
        raise _UsageError(f"{path}: expected a list of tool definitions, e.g. "
                          '[{"type": "function", "function": {"name": "get_weather", "parameters": {...}}}]') from None


def _text_or_stdin(value: str | None, what: str) -> str:
    if value is not None:
        return value
    if sys.stdin is None or sys.stdin.isatty():
        raise _UsageError(f"give {what} as an argument or on stdin")
    text = sys.stdin.read().strip()
    if not text:
        raise _UsageError(f"stdin was empty; give {what}")
    return text


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    return {"model": args.model, "max_tokens": args.max_tokens, "temperature": args.temperature}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas", description="Call a maas (or OpenAI-compatible) server.",
        epilog="examples:\n  maas models\n  maas chat \"Hi\" --stream\n  maas <command> --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"maas {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    common = _common_options()
    model = _model_option()
    sampling = _sampling_options()

    def add(name: str, run: Command, help: str, examples: Sequence[str],
            *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common, *parents],
                                  epilog="examples:\n" + "\n".join(f"  maas {name} {e}".rstrip() for e in examples),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(command=run)
        return sub

    add("generate", _generate, "continue a prompt", ['"Once upon a time" --max-tokens 40 --stream',
                                                     '"The capital of France is" --temperature 0'],
        model, sampling).add_argument("prompt", nargs="?", help="the prompt (default: read stdin)")
    chat = add("chat", _chat, "reply to a message", [
        '"Hi" --system "Answer briefly."',
        '"Name a city and its country" --response-format city.schema.json',
        '"Give me a JSON object with three colours" --response-format json',
        '"What is the weather in Paris?" --tools tools.json   # prints: -> get_weather(city="Paris")',
    ], model, sampling)
    chat.add_argument("messages", nargs="*", help="user message(s), in order (default: stdin)")
    chat.add_argument("--system", help="a system message to put first")
    chat.add_argument("--response-format", metavar="json|SCHEMA_FILE",
                      help="hold the reply to JSON: `json` for any JSON object, or a JSON schema file")
    chat.add_argument("--tools", metavar="FILE",
                      help="a JSON file of OpenAI tool definitions the model may call; calls print as "
                           '-> name(arg="value")')
    add("embed", _embed, "print one embedding vector (JSON) per text", ['"first text" "second text"'],
        model).add_argument("texts", nargs="+", help="the text(s) to embed, one vector each")
    classify_text = add("classify-text", _classify_text, "label texts", [
        '"I love it"   # sentiment: negative, neutral, positive', '"I love it" --explain',
        '"The striker scored" --labels sports cooking'], model)
    classify_text.add_argument("texts", nargs="+", help="the text(s) to label")
    classify_text.add_argument("--labels", nargs="+",
                               help="candidate labels (zero-shot; default: the sentiment model's own labels)")
    classify_text.add_argument("--top-k", type=int, help="print only the K best labels per text (default: all)")
    classify_text.add_argument("--explain", action="store_true", help="also weigh each token for the top label")
    classify_image = add("classify-image", _classify_image, "label image files", [
        "cat.jpg dog.png --top-k 3", "cat.jpg --explain cat-heatmap.png   # where the model looked"], model)
    classify_image.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    classify_image.add_argument("--top-k", type=int, help="print only the K best labels per image (default 5)")
    classify_image.add_argument("--explain", metavar="OUT.png",
                                help="write the heatmap of where the model looked for the top label, drawn "
                                     "over the image as the model saw it (centre crop), to OUT.png (one PATH)")
    entities = add("entities", _entities, "find named entities (people, places, dates...) in texts", [
        '"Angela Merkel visited Paris in 2019."', "< article.txt --aggregation none"], model)
    entities.add_argument("texts", nargs="*", help="the text(s) (default: read stdin)")
    entities.add_argument("--aggregation", choices=["simple", "none"], default="simple",
                          help="simple: one span per entity; none: one line per token, with its IOB tag")
    redact = add("redact", _redact, "remove personal data (names, emails, phones, cards, IBANs, IPs) from texts", [
        '"Mail Ada Lovelace at ada@example.com"', "< letter.txt --mask", '"Call 212-555-0199" --detect'], model)
    redact.add_argument("texts", nargs="*", help="the text(s) (default: read stdin)")
    redact.add_argument("--mask", nargs="?", const="*", metavar="CHAR",
                        help="write CHAR (default *) over each character found, instead of <TYPE>")
    redact.add_argument("--types", nargs="+", metavar="TYPE",
                        help="only these types, e.g. EMAIL_ADDRESS PHONE_NUMBER (default: all but LOCATION)")
    redact.add_argument("--detect", action="store_true", help="list what is found (type, offsets, score, text) "
                                                              "instead of redacting")
    detect_objects = add("detect-objects", _detect_objects, "find labelled objects in image files (boxes in pixels)",
                         ["street.jpg --score-threshold 0.4", "street.jpg --draw street-boxes.png"], model)
    detect_objects.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    detect_objects.add_argument("--score-threshold", type=float, help="leave out less sure finds (default 0.25)")
    detect_objects.add_argument("--iou-threshold", type=float, help="overlap above which boxes merge (default 0.45)")
    detect_objects.add_argument("--max-detections", type=int, help="at most this many per image (default 100)")
    detect_objects.add_argument("--draw", metavar="OUT.png",
                                help="also write the image with each box and its label drawn, as PNG (one PATH; "
                                     "needs Pillow)")
    detect_faces = add("detect-faces", _detect_faces, "find faces in image files (score and box, in pixels)",
                       ["photo.jpg", "photo.jpg --draw faces.png"], model)
    detect_faces.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    detect_faces.add_argument("--score-threshold", type=float,
                              help="leave out less sure faces (MTCNN keeps only faces above 0.7 anyway)")
    detect_faces.add_argument("--max-detections", type=int, help="at most this many per image (default 100)")
    detect_faces.add_argument("--draw", metavar="OUT.png",
                              help="also write the image with each face boxed and scored, as PNG (one PATH; "
                                   "needs Pillow)")
    compare_faces = add("compare-faces", _compare_faces,
                        "whether two photos show the same person: the distance between their best faces",
                        ["me.jpg passport.jpg", "me.jpg passport.jpg --threshold 0.5   # stricter"], model)
    compare_faces.add_argument("a", metavar="A", help="the first photo")
    compare_faces.add_argument("b", metavar="B", help="the second photo")
    compare_faces.add_argument("--threshold", type=float,
                               help="distances below it mean the same person (default 0.6, dlib's)")
    ocr = add("ocr", _ocr, "read the text in image files (printed text; reading order)",
              ["invoice.png", "invoice.png --lines   # one line per text line, with its score"], model)
    ocr.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    ocr.add_argument("--score-threshold", type=float, help="leave out less sure lines (default 0.5)")
    ocr.add_argument("--lines", action="store_true", help="one line per text line, with its score")
    srl = add("srl", _srl, "who did what to whom, when and where: each verb's semantic roles", [
        '"The window was broken by the boy yesterday."', "< story.txt"], model)
    srl.add_argument("texts", nargs="*", help="the text(s) (default: read stdin)")
    scene = add("scene", _scene, "the kind of place image files show (indoor, outdoor natural, outdoor man-made)",
                ["kitchen.jpg beach.jpg"], model)
    scene.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    transcribe = add("transcribe", _transcribe, "speech to text: an audio file (WAV, FLAC, MP3, Ogg, WebM, M4A)",
                     ["meeting.wav", "meeting.wav --timestamps --language en"], model)
    transcribe.add_argument("file", metavar="FILE", help="the audio file")
    transcribe.add_argument("--language", help="ISO 639-1 code of the speech (default: detected)")
    transcribe.add_argument("--prompt", help="text that sets the style or spells names")
    transcribe.add_argument("--timestamps", action="store_true", help="one line per segment, with its times")
    transcribe.add_argument("--words", action="store_true", help="also time each word (--json shows them)")
    translate = add("translate", _translate, "speech in another language to English text: an audio file "
                    "(needs a multilingual speech model)", ["interview-fr.mp3", "interview-fr.mp3 --timestamps"],
                    model)
    translate.add_argument("file", metavar="FILE", help="the audio file")
    translate.add_argument("--prompt", help="English text that sets the style or spells names")
    translate.add_argument("--timestamps", action="store_true", help="one line per segment, with its times")
    add("models", _models, "list the served models", ["", "--json"])
    add("usage", _usage, "what your API key used, per model: requests, errors, tokens, mean latency",
        ["", "--since 2026-01-01", "--since 2026-01-01T09:00:00Z --json"]).add_argument(
        "--since", help="from this date or time (ISO 8601, or Unix seconds; default: all time)")
    return parser


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", help="server URL (default: MAAS_BASE_URL or http://127.0.0.1:8000)")
    common.add_argument("--api-key", help="API key (default: MAAS_API_KEY)")
    common.add_argument("--timeout", type=float, help="connect and read timeout, seconds (default: 5 to connect, "
                                                      "600 to read)")
    common.add_argument("--max-retries", type=int, metavar="N",
                        help="retries after a failed connection, 429 or 5xx (default 2, with backoff); 0 fails at once")
    common.add_argument("--json", action="store_true", help="print the server's JSON")
    return common


def _model_option() -> argparse.ArgumentParser:
    # Not on `models`: it lists them all.
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", help="model id, as `maas models` lists them (default: the server's first for the "
                                       "task)")
    return model


def _sampling_options() -> argparse.ArgumentParser:
    sampling = argparse.ArgumentParser(add_help=False)
    sampling.add_argument("--max-tokens", type=int, help="at most this many new tokens (default: the server's)")
    sampling.add_argument("--temperature", type=float,
                          help="0 always picks the likeliest token (best for answers); higher varies more "
                               "(default 1)")
    sampling.add_argument("--stream", action="store_true", help="print text as it is generated")
    return sampling


if __name__ == "__main__":
    sys.exit(main())
