"""The CUDA path in one short run: models on the GPU in half precision, batching, and the server.

    .venv/bin/python benchmarks/cuda_check.py                 # on a machine with a GPU (~2-3 min)
    .venv/bin/python benchmarks/cuda_check.py --device cpu    # smoke run of the script itself

Prints, for each default model: device and dtype as loaded, in-process throughput at batch 1 and
a full batch, whether greedy generation gives the same text alone and batched in half precision,
and the server's generation throughput at 1 and 16 concurrent streams. CI never runs this; run it
on a machine with a GPU and copy the output into docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from run import (
    EMB_MODEL,
    GEN_MODEL,
    IMG_MODEL,
    PROMPT,
    SENTENCES,
    config_with,
    fixed_body,
    generation_load,
    inprocess_embeddings,
    inprocess_generation,
    inprocess_images,
    load,
)


def check_generation(tokens: int) -> None:
    from maas_server.models.generation_io import GenerationRequest

    model = load(GEN_MODEL)
    print(f"{GEN_MODEL}: {model.device} {model.dtype}")
    for batch in (1, 16, 64):
        print(f"  in-process static batch {batch}: {inprocess_generation(model, batch, tokens):.1f} tokens/s")
    prompts = [PROMPT, "The history of the printing press", "1, 2, 3,"]
    alone = [model.run([model.prepare(GenerationRequest(prompt=p, max_tokens=24, temperature=0))])[0].choices[0].text
             for p in prompts]
    batched = [r.choices[0].text for r in model.run(
        [model.prepare(GenerationRequest(prompt=p, max_tokens=24, temperature=0)) for p in prompts])]
    same = sum(a == b for a, b in zip(alone, batched))
    print(f"  greedy alone == batched: {same}/{len(prompts)} prompts"
          + ("" if same == len(prompts) else f" (differs: {[(a, b) for a, b in zip(alone, batched) if a != b]})"))


def check_embeddings() -> None:
    model = load(EMB_MODEL)
    print(f"{EMB_MODEL}: {model.device} {model.dtype}")
    for batch in (1, 32, 256):
        rate = inprocess_embeddings(model, min(batch, len(SENTENCES)), 10 if batch > 1 else 50)
        print(f"  in-process batch {min(batch, len(SENTENCES))}: {rate:.0f} texts/s")


def check_images() -> None:
    import io

    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buffer, "JPEG")
    model = load(IMG_MODEL)
    print(f"{IMG_MODEL}: {model.device} {model.dtype}")
    for batch in (1, 16, 64):
        print(f"  in-process batch {batch}: {inprocess_images(model, batch, 4, buffer.getvalue()):.0f} images/s")


def check_server(tokens: int) -> None:
    from maas_server.testing import ServerProcess

    with tempfile.TemporaryDirectory() as tmp, ServerProcess(config_with([GEN_MODEL], Path(tmp))) as url:
        for concurrency in (1, 16):
            row = generation_load(url, GEN_MODEL, concurrency, concurrency, fixed_body(tokens), f"c={concurrency}")
            print(f"  server c={concurrency}: {row.rate:.1f} tokens/s, TTFT p50 {row.ttft_ms:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu for a smoke run")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here; use --device cpu for a smoke run", file=sys.stderr)
        return 2
    os.environ["MAAS_DEVICE"] = args.device  # the settings read it, here (the loader) and in the server
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    tokens = 64 if args.device.startswith("cuda") else 8
    started = time.perf_counter()
    check_generation(tokens)
    check_embeddings()
    check_images()
    print("server (gunicorn, generation only):")
    check_server(tokens)
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (this process)")
    print(f"whole check: {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
