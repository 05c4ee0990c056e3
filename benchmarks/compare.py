"""Before/after in one run: the server at a git revision against the working tree's, alternating.

    .venv/bin/python benchmarks/compare.py --base main            # c=16 streaming, 3 repeats
    .venv/bin/python benchmarks/compare.py --base HEAD~2 --repeats 5 --concurrency 16

Both servers stay up side by side (one model each, idle between loads); each repeat drives the
base and the new one, in turn first (ABBA), with the same streamed c=16 load as `run.py`'s generation section, and
the ratio is taken within the repeat. The base's code comes from `git archive` into a temporary
folder, put first on its path (each server logs the maas_server it imported, to be sure).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from run import GEN_MODEL, Machine, Row, config_with, fixed_body, generation_load, machine_report

from maas_server.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[1]


def serve_from(code: Path) -> list[str]:
    """The command that starts the CLI with `code`'s maas_server first on the path."""
    snippet = (f"import sys; sys.path.insert(0, {str(code)!r}); import maas_server; "
               "print('maas_server from', maas_server.__file__, flush=True); "
               "from maas_server.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", snippet]


def export(revision: str, into: Path) -> Path:
    """The maas_server package as it was at `revision`."""
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision, "maas_server"],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="main", help="the git revision to compare against (default main)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    c, rows = args.concurrency, {"base": [], "new": []}
    before, started = Machine.now(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base_code = export(args.base, Path(tmp))
        config = config_with([GEN_MODEL], Path(tmp))
        with ServerProcess(config, command=serve_from(base_code)) as base_url, \
                ServerProcess(config, command=serve_from(ROOT)) as new_url:
            servers = {"base": base_url, "new": new_url}
            for url in servers.values():
                generation_load(url, GEN_MODEL, 4, 4, fixed_body(8), "warm-up")
            for repeat in range(args.repeats):
                # ABBA: whichever goes second meets a machine that got busier; swap each repeat.
                order = list(servers.items()) if repeat % 2 == 0 else list(reversed(servers.items()))
                for name, url in order:
                    rows[name].append(generation_load(url, GEN_MODEL, c, 2 * c, fixed_body(64), name))
    line, _ = machine_report("compare", before, Machine.now(), time.perf_counter() - started)
    print_comparison(args.base, rows)
    print(line)
    return 0


def print_comparison(base: str, rows: dict[str, list[Row]]) -> None:
    print(f"\nc=16 streaming, base = {base}\n| server | tokens/s per repeat | TTFT p50 ms | inter-token p50 / p95 ms |")
    print("|---|---|---|---|")
    for name, samples in rows.items():
        print(f"| {name} | {', '.join(f'{r.rate:.1f}' for r in samples)} | "
              f"{', '.join(f'{r.ttft_ms:.0f}' for r in samples)} | "
              f"{', '.join(f'{r.itl_p50_ms:.0f} / {r.itl_p95_ms:.0f}' for r in samples)} |")
    ratios = [new.rate / old.rate for old, new in zip(rows["base"], rows["new"])]
    print(f"new / base, per repeat: {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
