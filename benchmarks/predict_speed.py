"""Prediction speed and peak memory of every registered model.

Images/s of `Predictor.predict` (resize, network, optional fusion, upsampling to the
photo's size) for photos of 240x320 and 480x640, batch sizes 1 and 8, on the CPU and on
CUDA when present. Each configuration runs in a fresh process so its peak memory (RSS on
the CPU, torch's peak allocation on CUDA) is its own. Ratios are against dpde-r50 with the
same photo size, batch and device, measured in the same run.

    python benchmarks/predict_speed.py [--models dpde-lite dpde-r50] [--repeats 3] [--fuse]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time
from datetime import date


def _measure(
    queue,
    name: str,
    size: tuple[int, int],
    batch: int,
    device: str,
    repeats: int,
    fuse: bool,
    threads: int,
) -> None:
    """Child process: build the model, time `repeats` batches after a warm-up."""
    import numpy as np
    import torch

    from dpde_cli.predict import Predictor
    from dpde_cli.registry import create_model

    torch.set_num_threads(threads)
    fusion = None
    if fuse:
        from dpde_cli.fusion import FusionConfig

        fusion = FusionConfig()
    torch.manual_seed(0)
    model = create_model(name, weights=None)
    predictor = Predictor(model, torch.device(device), None, fusion)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(batch)]
    predictor.predict(images)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        predictor.predict(images)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - start
    queue.put((batch * repeats / seconds, peak_mb))


def measure(*args) -> tuple[float, float]:
    """Run one configuration in a fresh process; (images/s, peak MB)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_measure, args=(queue, *args))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    import torch

    from dpde_cli.registry import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list_models("dpde-[lr]*"))
    parser.add_argument("--sizes", nargs="*", default=["240x320", "480x640"])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fuse", action="store_true", help="include the IRLS fusion")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cpu = platform.processor() or platform.machine()
    print(
        f"# predict_speed  {date.today()}  torch {torch.__version__}  cpu {cpu} "
        f"({args.threads} threads)  fusion {'on' if args.fuse else 'off'}"
    )
    if torch.cuda.is_available():
        print(f"# cuda: {torch.cuda.get_device_name()}")
    print("| device | model | photo | batch | images/s | peak MB | x dpde-r50 |")
    print("|---|---|---|---|---|---|---|")
    for device in devices:
        for size_text in args.sizes:
            size = tuple(int(v) for v in size_text.split("x"))
            for batch in args.batches:
                rows = {
                    name: measure(name, size, batch, device, args.repeats, args.fuse, args.threads)
                    for name in args.models
                }
                reference = rows.get("dpde-r50", (None, None))[0]
                for name, (speed, peak) in rows.items():
                    ratio = f"{speed / reference:.2f}" if reference else "-"
                    print(
                        f"| {device} | {name} | {size_text} | {batch} | {speed:.2f} | "
                        f"{peak:.0f} | {ratio} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
