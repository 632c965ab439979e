"""Rendering speed of the procedural indoor scenes (dpde_cli.data.synthetic).

Scenes/s for 240x320 images with all effects on (shadows, ambient occlusion, sensor model
with JPEG), on the CPU (``render_scene`` one scene at a time, as a DataLoader worker would)
and on CUDA when present (``render_batch``), for tidy rooms (``clutter=0``, the default)
and cluttered ones (``clutter=1``: more primitives per scene), with the cluttered rate as a
ratio of the tidy one in the same run. Each scene is a new seed, so the figure is an
average over layouts. Prints the figures with the machine and the date as a Markdown
section for benchmarks/RESULTS.md.

    python benchmarks/synthetic_speed.py [--scenes 40] [--batch 16] [--threads 1 2]
        [--clutter 0 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import torch

from dpde_cli.data.synthetic import SceneConfig, render_batch, render_scene


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_cpu(cfg: SceneConfig, scenes: int, threads: int) -> tuple[float, float]:
    """Scenes/s of render_scene on the CPU with ``threads`` torch threads, and the CPU
    seconds the process used per scene (less sensitive to other load on the machine)."""
    torch.set_num_threads(threads)
    render_scene(10_000, cfg)  # warm-up
    start, cpu_start = time.perf_counter(), time.process_time()
    for seed in range(scenes):
        render_scene(seed, cfg)
    cpu = (time.process_time() - cpu_start) / scenes
    return scenes / (time.perf_counter() - start), cpu


def bench_cuda(cfg: SceneConfig, scenes: int, batch: int) -> float:
    """Scenes/s of render_batch on CUDA (scenes rounded up to whole batches)."""
    render_batch(range(10_000, 10_000 + batch), cfg, "cuda")  # warm-up
    torch.cuda.synchronize()
    n_batches = max(1, -(-scenes // batch))
    start = time.perf_counter()
    for k in range(n_batches):
        render_batch(range(k * batch, (k + 1) * batch), cfg, "cuda")
    torch.cuda.synchronize()
    return n_batches * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="scenes per measurement")
    parser.add_argument("--batch", type=int, default=16, help="CUDA batch size")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--clutter", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()

    machine = f"{_cpu_name()}, {os.cpu_count()} logical CPUs"
    if torch.cuda.is_available():
        machine += f"; {torch.cuda.get_device_name(0)}"
    header = f"{date.today().isoformat()}, {machine}, torch {torch.__version__}"
    print(header)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows = []  # (setting, clutter, scenes/s, CPU ms, ratio to the first clutter level)
    settings = [(f"CPU, {t} thread(s), render_scene", t) for t in sorted(set(args.threads))]
    if torch.cuda.is_available():
        settings.append((f"CUDA, render_batch of {args.batch}", None))
    for setting, threads in settings:
        base = None
        for level in args.clutter:
            cfg = SceneConfig(height=args.height, width=args.width, clutter=level)
            if threads is None:
                rate, cpu = bench_cuda(cfg, max(args.scenes, 4 * args.batch), args.batch), "-"
            else:
                rate, cpu_s = bench_cpu(cfg, args.scenes, threads)
                cpu = f"{cpu_s * 1000:.0f}"
            base = base or rate
            rows.append((setting, level, rate, cpu, rate / base))
            print(
                f"{setting}, clutter {level:g}: {rate:.2f} scenes/s ({1000 / rate:.1f} ms/scene,"
                f" {cpu} ms CPU; x{rate / base:.2f} of clutter {args.clutter[0]:g})"
            )
    load = os.getloadavg()[0]
    print(f"load average after: {load:.2f}")
    if args.no_write:
        return
    lines = [
        "# Synthetic scene rendering speed",
        "",
        "`python benchmarks/synthetic_speed.py` (all effects on: soft shadows, ambient",
        f"occlusion, sensor model with JPEG), {args.height}x{args.width}, {args.scenes} scenes",
        "per CPU figure, each a new seed.",
        "",
        f"Measured {header}; 1-minute load average {load:.2f} at the end (other work on the",
        "machine lowers the wall-clock figures; CPU ms/scene is the process's own CPU time).",
        "",
        f"| setting | clutter | scenes/s | ms/scene (wall) | ms/scene (CPU) "
        f"| rate x clutter {args.clutter[0]:g} |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {level:g} | {rate:.2f} | {1000 / rate:.1f} | {cpu} | {ratio:.2f} |"
            for name, level, rate, cpu, ratio in rows
        ),
        "",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
