"""Prometheus multiprocess mode needs its folder set before prometheus_client is imported.

prometheus_client picks how it stores values when its ``values`` module is imported, so this
module must not import it (nor anything that does).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_created: list[Path] = []  # folders made here, removed when the server exits


def prepare_multiprocess_dir(environ: dict[str, str] | None = None) -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR (a fresh temp folder unless set) and empty it; call before forking.

    Stale files from an earlier run would add old counts to the new server's, hence the cleaning;
    only prometheus_client's own ``*.db`` files are removed from a folder the operator named.
    """
    env = os.environ if environ is None else environ
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        _created.append(Path(tempfile.mkdtemp(prefix="maas-metrics-")))
    path = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or _created[-1])
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def remove_created_dirs() -> None:
    """gunicorn's on_exit hook: remove the folders prepare_multiprocess_dir made (never one the operator named)."""
    while _created:
        shutil.rmtree(_created.pop(), ignore_errors=True)
