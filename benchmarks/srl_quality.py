"""Semantic roles: per-role precision and recall of the served labeller on the hand-written sentence table.

    .venv/bin/python benchmarks/srl_quality.py           # the default config's semantic-role-labeling model
    .venv/bin/python benchmarks/srl_quality.py --show    # and each sentence's frames, AllenNLP's description

The table (tests/srl_sentences.py) gives, for each verb of 37 sentences, the PropBank roles an annotator
would mark; an argument counts when its verb, role and exact words match (CoNLL-2005's scoring). The last
lines give the sentences per second in-process, with the CPU model and the machine's load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from run import Machine, cpu_model, machine_report

from maas_server.models import load_model
from maas_server.settings import load_settings
from tests.srl_sentences import SENTENCES, found_in, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each sentence's frames")
    args = parser.parse_args()
    config = next(m for m in load_settings().models if m.task == "semantic-role-labeling")
    with tempfile.TemporaryDirectory() as cache:
        model = load_model(config, "cpu", None, Path(cache))
    model.warmup()
    texts = [text for text, _ in SENTENCES]
    before, start = Machine.now(), time.perf_counter()
    results = model.label([model.prepare(text) for text in texts])
    seconds = time.perf_counter() - start
    if args.show:
        for result in results:
            for frame in result.verbs:
                print(f"  {frame.description}")
    print(f"{config.name} ({config.source}), method {results[0].method!r}, {len(texts)} sentences")
    print(f"{'role':10s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'expected':>8s}")
    for role, counts in score([found_in(r) for r in results]).items():
        print(f"{role:10s} {counts.precision:9.2f} {counts.recall:7.2f} {counts.f1:6.2f} {counts.expected:8d}")
    print(f"speed: {len(texts) / seconds:.0f} sentences/s in one batch, on {cpu_model()}")
    print(machine_report("speed", before, Machine.now(), seconds)[0])


if __name__ == "__main__":
    main()
