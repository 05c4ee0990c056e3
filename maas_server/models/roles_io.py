"""What semantic role labelling takes and gives. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from .contract import Method


@dataclass(frozen=True)
class RoleArgument:
    """One argument of a predicate: its role (ARG0, ARG1, ARG2, ARGM-TMP...) and its characters,
    ``text == input[start:end]``."""

    role: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Frame:
    """One predicate (a verb) and its arguments, also as AllenNLP gives them: a BIO tag per word (``B-V`` on
    the verb) and a bracketed description ("[ARG0: The boy] [V: broke] [ARG1: the window]")."""

    verb: str
    start: int
    end: int
    tags: list[str]
    description: str
    arguments: list[RoleArgument]


@dataclass(frozen=True)
class Roles:
    """The predicates of one text, in order, over its words; `method` says how the roles were found:
    "dependency-rules" (rules over a syntactic parse) or "model" (a trained SRL model)."""

    words: list[str]
    verbs: list[Frame]
    method: str
    tokens: int


LABEL_ROLES: Method[str, Roles] = Method("label-roles")  # semantic roles: a text's predicates and their arguments
