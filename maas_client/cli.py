"""The ``maas`` command: each client method from the shell.

::

    maas generate "Once upon a time" --max-tokens 40 --stream
    maas chat "Hi" --system "Answer briefly."          # or: echo "Hi" | maas chat
    maas embed "first text" "second text"
    maas classify-text "I love it"                      # sentiment: negative, neutral, positive
    maas classify-text "The striker scored" --labels sports cooking
    maas classify-image cat.jpg
    maas entities "Angela Merkel visited Paris in 2019."   # or: maas entities < article.txt
    maas detect-objects street.jpg --score-threshold 0.4
    maas detect-faces photo.jpg
    maas models

Every command takes ``--base-url``, ``--api-key`` (else ``MAAS_BASE_URL``/``MAAS_API_KEY``),
``--timeout``, ``--max-retries`` (0: fail at once) and ``--json`` (print the server's JSON instead
of text); all but ``models`` take ``--model``. Exit codes: 0 done (a reader that stopped reading,
as ``| head`` does, included), 1 the call failed (the reason on stderr), 2 usage error, 130
interrupted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from ._version import __version__
from .client import Client
from .errors import MaasError
from .types import Classification, Entities, FaceDetections, ModelInfo, ObjectDetections

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
    messages = [{"role": "system", "content": args.system}] if args.system else []
    texts = args.messages or [_text_or_stdin(None, "a message")]
    messages += [{"role": "user", "content": text} for text in texts]
    _print_text(functools.partial(client.chat, messages, **_sampling(args)), args)


def _embed(client: Client, args: argparse.Namespace) -> None:
    result = client.embed(args.texts, model=args.model)
    _print(result, args.json, lambda r: "\n".join(json.dumps(v) for v in r.vectors))


def _classify_text(client: Client, args: argparse.Namespace) -> None:
    result = client.classify_text(args.texts, labels=args.labels, top_k=args.top_k, model=args.model,
                                  explain=args.explain)
    _print(result, args.json, lambda r: _classification_text(r, args.texts))


def _classify_image(client: Client, args: argparse.Namespace) -> None:
    result = client.classify_image(args.images, top_k=args.top_k, model=args.model)
    _print(result, args.json, lambda r: _classification_text(r, args.images))


def _entities(client: Client, args: argparse.Namespace) -> None:
    texts = args.texts or [_text_or_stdin(None, "a text")]
    result = client.extract_entities(texts, model=args.model, aggregation=args.aggregation)
    _print(result, args.json, lambda r: _entities_text(r, texts))


def _transcribe(client: Client, args: argparse.Namespace) -> None:
    result = client.transcribe(args.file, model=args.model, language=args.language, prompt=args.prompt,
                               words=args.words)
    timed = args.timestamps
    _print(result, args.json, lambda r: "\n".join(f"[{s.start:7.2f} - {s.end:7.2f}] {s.text.strip()}"
                                                  for s in r.segments) if timed else r.text)


def _detect_objects(client: Client, args: argparse.Namespace) -> None:
    result = client.detect_objects(args.images, score_threshold=args.score_threshold,
                                   iou_threshold=args.iou_threshold, max_detections=args.max_detections,
                                   model=args.model)
    _print(result, args.json, lambda r: _detections_text(r, args.images))


def _detect_faces(client: Client, args: argparse.Namespace) -> None:
    result = client.detect_faces(args.images, score_threshold=args.score_threshold,
                                 max_detections=args.max_detections, model=args.model)
    _print(result, args.json, lambda r: _faces_text(r, args.images))


def _models(client: Client, args: argparse.Namespace) -> None:
    models = client.models()
    if args.json:
        data = [info.model_dump(mode="json", exclude_unset=True) for info in models]
        print(json.dumps({"object": "list", "data": data}, indent=2))
    else:
        print(_models_table(models))


# ---------------------------------------------------------------------- output


def _print_text(call: Callable[..., Any], args: argparse.Namespace) -> None:
    """Print a generate/chat result's text, or its chunks as they come with --stream."""
    if args.stream:
        with call(stream=True) as stream:
            _print_stream(stream, args.json)
    else:
        _print(call(stream=False), args.json, lambda result: result.text)


def _print(result: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    print(_json(result, indent=2) if as_json else text(result))


def _print_stream(stream: Any, as_json: bool) -> None:
    if as_json:  # one chunk per line (JSON Lines), as the server sent them
        for chunk in stream:
            print(_json(chunk), flush=True)
        return
    for text in stream.iter_text():
        print(text, end="", flush=True)
    print()


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


# ---------------------------------------------------------------------- arguments


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
        prog="maas", description="Call a maas (or OpenAI-compatible) server."
    )
    parser.add_argument("--version", action="version", version=f"maas {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    common = _common_options()
    model = _model_option()
    sampling = _sampling_options()

    def add(name: str, run: Command, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common, *parents])
        sub.set_defaults(command=run)
        return sub

    add("generate", _generate, "continue a prompt", model, sampling).add_argument(
        "prompt", nargs="?", help="the prompt (default: read stdin)"
    )
    chat = add("chat", _chat, "reply to a message", model, sampling)
    chat.add_argument("messages", nargs="*", help="user message(s), in order (default: stdin)")
    chat.add_argument("--system", help="a system message to put first")
    add("embed", _embed, "print one embedding vector (JSON) per text", model).add_argument(
        "texts", nargs="+", help="the text(s) to embed, one vector each"
    )
    classify_text = add("classify-text", _classify_text, "label texts", model)
    classify_text.add_argument("texts", nargs="+", help="the text(s) to label")
    classify_text.add_argument("--labels", nargs="+",
                               help="candidate labels (zero-shot; default: the sentiment model's own labels)")
    classify_text.add_argument("--top-k", type=int, help="print only the K best labels per text (default: all)")
    classify_text.add_argument("--explain", action="store_true", help="also weigh each token for the top label")
    classify_image = add("classify-image", _classify_image, "label image files", model)
    classify_image.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    classify_image.add_argument("--top-k", type=int, help="print only the K best labels per image (default 5)")
    entities = add("entities", _entities, "find named entities (people, places, dates...) in texts", model)
    entities.add_argument("texts", nargs="*", help="the text(s) (default: read stdin)")
    entities.add_argument("--aggregation", choices=["simple", "none"], default="simple",
                          help="simple: one span per entity; none: one line per token, with its IOB tag")
    detect_objects = add("detect-objects", _detect_objects, "find labelled objects in image files (boxes in pixels)",
                         model)
    detect_objects.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    detect_objects.add_argument("--score-threshold", type=float, help="leave out less sure finds (default 0.25)")
    detect_objects.add_argument("--iou-threshold", type=float, help="overlap above which boxes merge (default 0.45)")
    detect_objects.add_argument("--max-detections", type=int, help="at most this many per image (default 100)")
    detect_faces = add("detect-faces", _detect_faces, "find faces in image files (score and box, in pixels)", model)
    detect_faces.add_argument("images", nargs="+", metavar="PATH", help="image file(s): JPEG, PNG, WebP...")
    detect_faces.add_argument("--score-threshold", type=float,
                              help="leave out less sure faces (MTCNN keeps only faces above 0.7 anyway)")
    detect_faces.add_argument("--max-detections", type=int, help="at most this many per image (default 100)")
    transcribe = add("transcribe", _transcribe, "speech to text: an audio file (WAV, FLAC, MP3, Ogg, WebM, M4A)",
                     model)
    transcribe.add_argument("file", metavar="FILE", help="the audio file")
    transcribe.add_argument("--language", help="ISO 639-1 code of the speech (default: detected)")
    transcribe.add_argument("--prompt", help="text that sets the style or spells names")
    transcribe.add_argument("--timestamps", action="store_true", help="one line per segment, with its times")
    transcribe.add_argument("--words", action="store_true", help="also time each word (--json shows them)")
    add("models", _models, "list the served models")
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
