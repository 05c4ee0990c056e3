"""The package version, kept apart so that every module can import it without cycles."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("maas-kit")  # the distribution's name on PyPI (pyproject.toml)
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.2.0"
