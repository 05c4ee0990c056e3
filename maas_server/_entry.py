"""The `maas-server` command's entry point: says what to install when the server extra is missing.

The client is the default install (``pip install maas-kit``) and the wheel carries ``maas_server``
too, so a client-only install has a `maas-server` command whose imports (Flask, SQLAlchemy, torch,
...) are absent. This module imports nothing of the server until it has checked that the import works.
"""

from __future__ import annotations

import sys

DISTRIBUTION = "maas-kit"  # the name on PyPI; `maas` there is another project
SERVER_INSTALL = f"pip install '{DISTRIBUTION}[server]'"


def main(argv: list[str] | None = None) -> int:
    """Run `maas-server`, or exit 2 with the install line when the server's dependencies are missing."""
    try:
        from .cli import main as server_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "maas_server":
            raise  # our own module missing is a broken install, not a missing extra
        print(f"maas-server: the server's dependencies are not installed (no module named {exc.name!r}); "
              f"install them with: {SERVER_INSTALL}", file=sys.stderr)
        return 2
    return server_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
