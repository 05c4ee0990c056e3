"""Prometheus multiprocess mode needs its folder set before prometheus_client is imported.

prometheus_client picks how it stores values when its ``values`` module is imported, so this
module must not import it (nor anything that does).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def prepare_multiprocess_dir(environ: dict[str, str] | None = None) -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR (a fresh temp folder unless set) and empty it; call before forking.

    Stale files from an earlier run would add old counts to the new server's, hence the cleaning;
    only prometheus_client's own ``*.db`` files are removed from a folder the operator named.
    """
    env = os.environ if environ is None else environ
    path = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="maas-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path
