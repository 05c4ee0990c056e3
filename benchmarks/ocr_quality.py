"""OCR quality and speed in-process: character error rate per rendered condition, and images per second.

    .venv/bin/python benchmarks/ocr_quality.py            # the default config's OCR model
    .venv/bin/python benchmarks/ocr_quality.py --rounds 3 # read the set three times for the speed figure

The images are tests/ocr_images.py's: the conditions the tests bound (fonts, sizes, rotation, noise, JPEG
quality 30) and the turned pages they leave out. Each line gives the condition, the image size, its character
error rate (whitespace folded) and the seconds it took; then images per second over the whole set read
`--rounds` times in batches of four through the adapter (as the runner hands them over), with the CPU model
and the machine's load (benchmarks/run.py's report: other processes' share of the CPU says whether the
figure stands alone).
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
from maas_server.models.base import TextQuery
from maas_server.settings import load_settings
from tests.ocr_images import CONDITIONS, TURNED, cer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times the set is read for the speed figure")
    args = parser.parse_args()
    config = next(m for m in load_settings().models if m.task == "ocr")
    with tempfile.TemporaryDirectory() as cache:
        model = load_model(config, "cpu", None, Path(cache))
    model.warmup()
    print(f"{config.name} ({config.source}) on {cpu_model()}")
    print(f"{'condition':34s} {'size':>9s} {'CER':>6s} {'seconds':>8s}")
    errors = []
    for condition in (*CONDITIONS, *TURNED):
        image = condition.render()
        start = time.perf_counter()
        [result] = model.read([model.prepare(TextQuery(image))])
        seconds, error = time.perf_counter() - start, cer(condition.text, result.text)
        if condition in CONDITIONS:
            errors.append(error)
        print(f"{condition.name:34s} {image.width:4d}x{image.height:<4d} {error:6.3f} {seconds:8.2f}")
    print(f"mean CER over the bounded set ({len(errors)} images): {sum(errors) / len(errors):.4f}, "
          f"worst {max(errors):.4f}")

    images = [c.render() for c in CONDITIONS] * args.rounds
    before, start = Machine.now(), time.perf_counter()
    for first in range(0, len(images), 4):
        model.read([model.prepare(TextQuery(image)) for image in images[first:first + 4]])
    seconds = time.perf_counter() - start
    print(f"throughput: {len(images) / seconds:.2f} images/s ({len(images)} images, batches of 4)")
    print(machine_report("speed", before, Machine.now(), seconds)[0])


if __name__ == "__main__":
    main()
