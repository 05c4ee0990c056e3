"""The contract between the runtime and every task adapter: methods, batch and step methods, the
model's self-description and the errors an item can fail with. Imports no torch.

An adapter is built by ``load(config, device, dtype, cache_dir)``, describes itself once
(:class:`ModelDescription`) and offers its work as typed :class:`Method` objects, each implemented
as a *batch method*: ``prepare`` turns one request item into model input (tokenizing, checking its
length) and may raise :class:`InvalidInput` for that item alone; ``run`` takes a list of prepared
items and returns one output per item, in order. Generation is a *step method* instead: a batch
that requests join and leave between decode steps, which returns its progress as plain events
(:class:`TextDelta`) and never calls out. The runner (runtime/) decides what goes into a batch.

Each task's own request and result types sit beside its adapter, in ``models/<task>_io.py`` (torch-free
too). Everything that crosses the boundary is plain data, so a request, its events and its result can
cross a process boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar


class InvalidInput(ValueError):
    """One request item cannot be processed as given (too long, wrong labels...).

    `code` is a stable machine-readable reason and `param` names the offending field; the wire
    layer turns this into a 400 with the message unchanged, so say what to change.
    """

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class ItemFailed(RuntimeError):
    """One item failed on its own (the rest of its batch did not): the same input will fail again.

    The runner reports it to that item's caller alone; the wire answers 500 with
    ``x-should-retry: false`` so that clients do not resend a request that cannot succeed.
    """


def failed_alone(exc: Exception) -> Exception:
    """An error one item raised on its own: input errors stay as they are, others become ItemFailed."""
    if isinstance(exc, (InvalidInput, ItemFailed)):
        return exc
    failed = ItemFailed(f"the model failed on this input ({type(exc).__name__}: {exc})")
    failed.__cause__ = exc
    return failed


In = TypeVar("In")


Out = TypeVar("Out")


@dataclass(frozen=True)
class Method(Generic[In, Out]):
    """A kind of work a model offers, typed by what one item is and what its result is.

    Routes and adapters refer to the same constants below, so a misspelt method is a NameError
    at import and a type error under mypy, and a model that lacks a method its task declares fails
    when it loads (see runtime/registry.py), never when a request runs.
    """

    name: str

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


DEFAULT_LANE = "default"


EXPLAIN_LANE = "explain"  # explanations: a backward pass each, so they queue apart from plain inference


@dataclass(frozen=True)
class BatchMethod:
    """A unit of batched work: per-item preparation, then one call over the whole batch."""

    prepare: Callable[[Any], Any]
    run: Callable[[list[Any]], list[Any]]
    max_batch_size: int | None = None  # an upper bound the adapter imposes, if any
    # True when `prepare` is thread-safe and worth overlapping with compute (image resizing): it then
    # runs on the request's thread before queueing, and a slow or invalid input costs the runner nothing.
    prepare_on_caller: bool = False
    # Methods of another lane get a runner of their own (thread, queue, limits): their work never
    # waits behind the default lane's, nor delays it in the queue. Such a method must not share
    # mutable state with the default lane's (an explanation works on its own copy of the network).
    lane: str = DEFAULT_LANE


@dataclass
class StepOutput:
    """What a join or a decode step produced, keyed by the runner's handles for the items.

    ``events`` are progress in order (streamed text); ``finished`` are the items that are done, with
    their result, or with an ItemFailed when the item failed alone while the others went on.
    """

    events: list[tuple[Any, Any]] = field(default_factory=list)
    finished: list[tuple[Any, Any]] = field(default_factory=list)


class DecodeBatch(Protocol):
    """Work that advances one step at a time for everything in it (continuous batching).

    Items join between steps and leave when done; keys are the runner's handles for them.
    """

    def __len__(self) -> int: ...  # rows in the batch (the runner keeps it under its limit)

    def add(self, items: list[tuple[Any, Any]]) -> StepOutput: ...  # prefill (key, prepared) items

    def step(self) -> StepOutput: ...  # one decode step for every row

    # The items leave now, finished with what they produced so far (a client that left is billed for it).
    def cancel(self, keys: list[Any]) -> StepOutput: ...


@dataclass(frozen=True)
class StepMethod:
    """Iterative work (token generation): per-item preparation, then a batch that items join and leave."""

    prepare: Callable[[Any], Any]
    new_batch: Callable[[], DecodeBatch]
    rows: Callable[[Any], int] = lambda prepared: 1  # batch rows a prepared item occupies (n choices: n)
    max_batch_size: int | None = None  # an upper bound on rows the adapter imposes, if any
    prefill_tokens: Callable[[Any], int] = lambda prepared: 0  # work joining costs (prompt tokens x rows)
    # The decode steps x rows a prepared item may take at most (generation: max_tokens x n): what the runner's
    # wait estimate counts for it, so a queue of long generations is not taken for one of short ones.
    row_steps: Callable[[Any], int] = lambda prepared: 1
    # As for BatchMethod: prepare on the request's thread (tokenizing, compiling a grammar), so that a
    # long prompt or a slow schema never holds up the decode steps of the requests already running.
    prepare_on_caller: bool = False
    lane: str = DEFAULT_LANE


@dataclass(frozen=True)
class ModelDescription:
    """What a loaded model says about itself; the wire layer shows it (GET /v1/models) and checks requests
    against it (embedding dimensions). Fields that do not apply to a task stay None."""

    device: str
    dtype: str  # of the weights in use: "int8" when runtime is onnx-int8
    runtime: str | None = None  # what runs the forward pass (torch, onnx, onnx-int8), where a config chooses it
    context_length: int | None = None  # tokens a request may use (prompt plus output)
    max_characters: int | None = None  # characters one input may have, for models limited in characters (spaCy)
    dimensions: int | None = None  # embedding size
    labels: tuple[str, ...] | None = None  # a classifier's own label set
    languages: tuple[str, ...] | None = None  # speech: the languages it transcribes (ISO 639-1); ("en",): English only
    translates: bool | None = None  # speech: whether it can translate what it hears into English


class TaskModel(Protocol):
    """The interface the runtime relies on."""

    task: str

    def describe(self) -> ModelDescription: ...

    def batch_methods(self) -> Mapping[Method[Any, Any], BatchMethod | StepMethod]: ...

    def warmup(self) -> None: ...
