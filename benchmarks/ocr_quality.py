"""OCR quality and speed in-process: character error rate per rendered condition, and images per second.

    .venv/bin/python benchmarks/ocr_quality.py            # the default config's OCR model
    .venv/bin/python benchmarks/ocr_quality.py --rounds 3 # read the set three times for the speed figure
    .venv/bin/python benchmarks/ocr_quality.py --server   # and through a server (gunicorn), 1 and 4 clients

The images are tests/ocr_images.py's: the conditions the tests bound (fonts, sizes, rotation, noise, JPEG
quality 30) and the turned pages they leave out. Each line gives the condition, the image size, its character
error rate (whitespace folded) and the seconds it took; then images per second over the whole set read
`--rounds` times in batches of four through the adapter (as the runner hands them over), with the CPU model
and the machine's load (benchmarks/run.py's report: other processes' share of the CPU says whether the
figure stands alone). With `--server`, the same images go to a server of the OCR model alone (default
settings, PNG uploads through maas_client) from 1 and then 4 client threads, one image a call, and the
ratio to in-process is printed.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from run import Machine, cpu_model, drive, machine_report

from maas_server.models import load_model
from maas_server.models.ocr_io import TextQuery
from maas_server.settings import load_settings
from maas_server.testing import ServerProcess
from tests.ocr_images import CONDITIONS, TURNED, cer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times the set is read for the speed figure")
    parser.add_argument("--server", action="store_true", help="also measure through a server")
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
    in_process = len(images) / seconds
    print(f"throughput in-process: {in_process:.2f} images/s ({len(images)} images, batches of 4)")
    print(machine_report("in-process", before, Machine.now(), seconds)[0])
    if args.server:
        through_server(config, images, in_process)


def through_server(config: object, images: list[object], in_process: float) -> None:
    """Images per second through a server of the OCR model alone, from 1 and 4 client threads."""
    from maas_client import Client

    uploads = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")  # type: ignore[attr-defined]
        uploads.append(buffer.getvalue())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ocr.toml"
        path.write_text(f'[[models]]\nname = "{config.name}"\ntask = "ocr"\nsource = "{config.source}"\n')  # type: ignore[attr-defined]
        with ServerProcess(str(path)) as url, Client(base_url=url, timeout=600, max_retries=0) as client:
            client.read_text(uploads[0])  # warm
            for clients in (1, 4):
                before = Machine.now()
                seconds, _, _ = drive(clients, len(uploads), lambda i: client.read_text(uploads[i]))
                rate = len(uploads) / seconds
                print(f"throughput through the server, {clients} client(s): {rate:.2f} images/s "
                      f"({rate / in_process:.2f}x in-process)")
                print(machine_report(f"server c={clients}", before, Machine.now(), seconds)[0])


if __name__ == "__main__":
    main()
