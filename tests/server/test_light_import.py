"""The wire layer loads no model libraries: `import maas_server.app` stays light.

Checked in a fresh interpreter, as the client's light import is, so nothing this test session has
already imported can hide a heavy import.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "timm", "PIL", "torchvision", "spacy", "thinc", "ray")


def test_importing_the_app_loads_no_model_library() -> None:
    code = f"import json, sys; import maas_server.app; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
