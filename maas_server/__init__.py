"""maas_server: a thin Flask + gunicorn backend hosting several models at once.

Layers: api/ (wire: parse, validate, shape responses), runtime/ (runners, registry, device),
models/ (torch/transformers adapters). Nothing heavy happens at import; see app.create_app.
"""

from __future__ import annotations

try:
    from importlib.metadata import version as _version

    __version__ = _version("maas-kit")  # the distribution's name on PyPI (pyproject.toml)
except Exception:  # noqa: BLE001  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
