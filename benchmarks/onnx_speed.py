"""onnxruntime against torch on the CPU: ms per image and the largest difference.

For each model, the network alone (no resize, no fusion) at 240x320 and 480x640, batch 1,
same thread count for both. The model is exported once (``dpde_cli.export.export_model``,
fp32) and run through ``dpde_cli.exported.load_exported``; the two runtimes alternate
within each repeat so that a shared machine's load falls on both alike, and the medians are
compared: the ratio is torch's time over onnxruntime's (above 1: onnxruntime is faster).
dpde-lite runs with its shipped weights; dpde-r50 has none shipped and runs untrained
(speed does not depend on the weights; its difference figures are for random weights).

    python benchmarks/onnx_speed.py [--models dpde-lite dpde-r50] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

SIZES = ((240, 320), (480, 640))


def _time(call, image) -> tuple[float, object]:
    """Seconds one call takes, and its answer."""
    start = time.perf_counter()
    out = call(image)
    return time.perf_counter() - start, out


def measure(name: str, folder: Path, repeats: int, threads: int) -> list[dict]:
    """One record per size: median ms per image of torch and onnxruntime, and differences."""
    import torch

    from dpde_cli.export import export_model
    from dpde_cli.exported import load_exported
    from dpde_cli.registry import create_model, get_entry

    shipped = get_entry(name).weights.path
    weights = "default" if shipped is not None and shipped.is_file() else None
    torch.manual_seed(0)
    model = create_model(name, weights=weights)
    source = (model.spec.file, model.spec.sha256) if weights else None
    path = export_model(model, folder / f"{name}.onnx", source=source)
    exported = load_exported(path, threads=threads)

    def run_torch(image):
        with torch.no_grad():
            return model(image)

    records = []
    for height, width in SIZES:
        image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        run_torch(image), exported(image)  # warm-up
        torch_s, onnx_s = [], []
        for _ in range(repeats):
            seconds, want = _time(run_torch, image)
            torch_s.append(seconds)
            seconds, got = _time(exported, image)
            onnx_s.append(seconds)
        records.append(
            {
                "model": name,
                "weights": "shipped" if weights else "untrained",
                "size": f"{height}x{width}",
                "torch_ms": 1000 * statistics.median(torch_s),
                "onnx_ms": 1000 * statistics.median(onnx_s),
                "depth_diff": float((got.depth - want.depth).abs().max()),
                "gradients_diff": float((got.gradients - want.gradients).abs().max()),
            }
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dpde-lite", "dpde-r50"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="for torch and onnxruntime")
    args = parser.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    print(
        f"# onnxruntime {onnxruntime.__version__} vs torch {torch.__version__}, CPU "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}), {args.threads} thread(s), batch 1, "
        f"median of {args.repeats}, {date.today()}"
    )
    print("| model | weights | size | torch ms | onnxruntime ms | torch / ort | max diff depth (m) "
          "| max diff gradients |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            for r in measure(name, Path(folder), args.repeats, args.threads):
                print(
                    f"| {r['model']} | {r['weights']} | {r['size']} | {r['torch_ms']:.0f} "
                    f"| {r['onnx_ms']:.0f} | {r['torch_ms'] / r['onnx_ms']:.2f} "
                    f"| {r['depth_diff']:.1e} | {r['gradients_diff']:.1e} |",
                    flush=True,
                )
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
