"""Metric depth from N sparse measurements: dpde's completion against classical fills.

The sparse-to-dense protocol of Ma & Karaman (2018): N ground-truth pixels drawn uniformly
from the valid ones (``dpde_cli.sparse.sample_sparse``, seed ``--seed``) stand in for a
sensor's measurements. On the same samples, per image:

- **network**: dpde-lite's depth as ``predict`` writes it (fused), no alignment;
- **median-aligned (oracle)**: the same scaled by median(gt) / median(pred) over all of
  the ground truth (a reference: what a perfect global scale gives);
- **scale-aligned**: scaled by the robust scale fitted to the samples
  (``dpde_cli.completion.fit_alignment``);
- **dpde completion**: ``dpde_cli.completion.complete_depth`` with its defaults;
- **griddata**: ``scipy.interpolate.griddata`` linear, nearest outside the hull (the
  samples alone);
- **colorization**: the colour-guided fill of Levin et al. (2004) that NYUv2 used for its
  filled depth maps (the samples and the photo).

Sets: real-dev ``nyu-raw`` + ``sun-tum`` (5 frames; for final reports, never tuned on) and
real-train ``sevenscenes`` (every ``--stride``-th of the 500 frames: 20 by default),
``tabletop`` (every 10th: 5) and ``middlebury2014`` (15; about 490x720). Metrics: REL,
RMS (m), d1 over 1e-3 < gt < 10 m, mean of per-image values, each set weighted equally
within its group. Time: ms per image for each method on the 480x640 frames (the network's
``predict`` for reference), wall clock and CPU time of this process (all its threads: the
figure to trust on a shared machine, for the single-threaded numpy/scipy methods).

    python benchmarks/completion.py [--samples 1 10 200 500] [--limit K] [--seed 0]
        [--stride 25] [--sets nyu-raw,sun-tum,...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import torch

from dpde_cli.completion import complete_depth, fit_alignment
from dpde_cli.fusion import FusionConfig
from dpde_cli.io import read_depth, read_image
from dpde_cli.predict import Predictor
from dpde_cli.registry import create_model
from dpde_cli.sparse import sample_sparse, sparse_points

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {  # name: (folder under ../shared/data, group, frame stride; None = --stride)
    "nyu-raw": ("real-dev/nyu-raw", "real-dev", 1),
    "sun-tum": ("real-dev/sun-tum", "real-dev", 1),
    "sevenscenes": ("real-train/sevenscenes-redkitchen", "real-train", None),
    "tabletop": ("real-train/tabletop", "real-train", 10),
    "middlebury2014": ("real-train/middlebury2014", "real-train", 1),
}
METHODS = (
    "network",
    "median-aligned (oracle)",
    "scale-aligned",
    "dpde completion",
    "griddata",
    "colorization",
)
MIN_DEPTH, MAX_DEPTH = 1e-3, 10.0


# ------------------------------------------------------------------------------ baselines


def griddata_fill(sparse: np.ndarray) -> np.ndarray:
    """Linear interpolation of the samples over their triangulation, nearest outside it."""
    from scipy.interpolate import griddata
    from scipy.spatial import QhullError

    rows, cols, z, _ = sparse_points(sparse)
    grid = tuple(np.mgrid[0 : sparse.shape[0], 0 : sparse.shape[1]])
    nearest = griddata((rows, cols), z, grid, method="nearest")
    if z.size < 3:
        return nearest
    try:
        linear = griddata((rows, cols), z, grid, method="linear")
    except QhullError:  # collinear samples
        return nearest
    return np.where(np.isnan(linear), nearest, linear)


def colorization_fill(sparse: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """The colour-guided fill of Levin, Lischinski and Weiss (2004), as NYUv2 used it.

    Each unknown pixel is the affinity-weighted mean of its 8 neighbours,
    ``d_p = sum_q w_pq d_q`` with ``w_pq ~ exp(-(Y_p - Y_q)^2 / sigma_p^2)`` normalised to
    sum 1, ``Y`` the grey level in [0, 1] and ``sigma_p^2`` 0.6 times the variance of Y over
    the 3x3 window (at least what gives the most similar neighbour the weight 0.01, and at
    least 2e-6); the samples are fixed. One sparse linear solve.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    known = (sparse > 0).ravel()
    if known.sum() == 1:  # the weights of each row sum to 1: the one value fills all
        return np.full(sparse.shape, float(sparse.max()))
    h, w = sparse.shape
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    padded = np.pad(grey, 1, mode="edge")
    inside = np.pad(np.ones((h, w), bool), 1)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    shifted = np.stack([padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    present = np.stack([inside[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    window = np.concatenate([shifted, grey[None]])
    window_present = np.concatenate([present, np.ones((1, h, w), bool)])
    count = window_present.sum(axis=0)
    mean = (window * window_present).sum(axis=0) / count
    variance = (((window - mean) ** 2) * window_present).sum(axis=0) / count
    diff2 = np.where(present, (shifted - grey) ** 2, np.inf)
    sigma2 = np.maximum(0.6 * variance, -diff2.min(axis=0) / np.log(0.01))
    sigma2 = np.maximum(sigma2, 2e-6)
    weight = np.where(present, np.exp(-diff2 / sigma2), 0.0)
    weight /= weight.sum(axis=0)
    index = np.arange(h * w).reshape(h, w)
    padded_index = np.pad(index, 1)
    neighbour = np.stack(
        [padded_index[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets]
    )
    rows = np.broadcast_to(index, weight.shape)[present]
    matrix = sp.csr_matrix((weight[present], (rows, neighbour[present])), shape=(h * w, h * w))
    values = sparse.ravel().astype(np.float64)
    unknown = ~known
    system = sp.identity(int(unknown.sum()), format="csc") - matrix[unknown][:, unknown]
    rhs = matrix[unknown][:, known] @ values[known]
    out = values.copy()
    out[unknown] = spla.spsolve(system.tocsc(), rhs)
    return out.reshape(h, w)


# ------------------------------------------------------------------------------ the run


def frames(name: str, stride: int, limit: int | None) -> list[tuple[str, Path, Path]]:
    """(stem, rgb, depth) of a set's frames: every stride-th, sorted, at most limit."""
    folder, _, own_stride = SETS[name]
    root = SHARED / folder
    rgbs = sorted(p for p in (root / "rgb").iterdir() if p.suffix in (".png", ".jpg"))
    picked = rgbs[:: own_stride or stride][:limit]
    return [(p.stem, p, root / "depth" / f"{p.stem}.png") for p in picked]


def scores(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """REL, RMS (m), d1 over the mask, the prediction clamped to the depth range."""
    p = np.clip(pred[mask].astype(np.float64), MIN_DEPTH, MAX_DEPTH)
    g = gt[mask].astype(np.float64)
    ratio = np.maximum(p / g, g / p)
    return (
        float(np.mean(np.abs(p - g) / g)),
        float(np.sqrt(np.mean((p - g) ** 2))),
        float(np.mean(ratio < 1.25)),
    )


class _Clock:
    """Wall and CPU seconds (this process, all threads) since it was made."""

    def __init__(self) -> None:
        self.start = (time.perf_counter(), time.process_time())

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.start[0], time.process_time() - self.start[1]


def run_image(
    predictor: Predictor, rgb_path: Path, depth_path: Path, samples: list[int], seed: int
) -> tuple[dict, dict, tuple[int, int]]:
    """Every method on one frame: ({(n, method): scores}, {(n, method): (wall, CPU) s}, size)."""
    rgb = read_image(rgb_path)
    gt = read_depth(depth_path)
    mask = np.isfinite(gt) & (gt > MIN_DEPTH) & (gt < MAX_DEPTH)
    clock = _Clock()
    [prediction] = predictor.predict([rgb])
    seconds = {(0, "predict"): clock.read()}
    depth, gradients = prediction.depth, prediction.gradients
    median = depth * (np.median(gt[mask]) / np.median(depth[mask]))
    results = {}
    for n in samples:
        sparse = sample_sparse(gt, mask, n, seed)
        methods = _methods(depth, gradients, median, sparse, rgb)
        for method, fill in methods.items():
            clock = _Clock()
            out = fill()
            seconds[(n, method)] = clock.read()
            results[(n, method)] = scores(out, gt, mask)
    return results, seconds, gt.shape


def _methods(
    depth: np.ndarray,
    gradients: np.ndarray,
    median: np.ndarray,
    sparse: np.ndarray,
    rgb: np.ndarray,
) -> dict:
    """Each method's depth from one frame's prediction and samples, as a call to time."""
    rows, cols, z, _ = sparse_points(sparse)
    return {
        "network": lambda: depth,
        "median-aligned (oracle)": lambda: median,
        "scale-aligned": lambda: depth * fit_alignment(depth[rows, cols], z).scale,
        "dpde completion": lambda: complete_depth(depth, gradients, sparse).depth,
        "griddata": lambda: griddata_fill(sparse),
        "colorization": lambda: colorization_fill(sparse, rgb),
    }


def evaluate(
    predictor: Predictor, names: list[str], samples: list[int], args: argparse.Namespace
) -> tuple[dict, dict]:
    """Per set, the mean scores of every (n, method); per (n, method), seconds at 480x640."""
    per_set: dict[str, dict] = {}
    timings: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for name in names:
        collected: dict[tuple[int, str], list] = defaultdict(list)
        for _stem, rgb_path, depth_path in frames(name, args.stride, args.limit):
            results, seconds, size = run_image(predictor, rgb_path, depth_path, samples, args.seed)
            for key, value in results.items():
                collected[key].append(value)
            if size == (480, 640):
                for key, value in seconds.items():
                    timings[key].append(value)
        per_set[name] = {key: np.mean(values, axis=0).tolist() for key, values in collected.items()}
        per_set[name]["frames"] = len(collected[(samples[0], METHODS[0])])
    return per_set, {key: np.mean(v, axis=0).tolist() for key, v in timings.items()}


def print_table(per_set: dict, timings: dict, samples: list[int]) -> None:
    """One markdown table: rows (N, method), columns the groups' REL / RMS / d1, ms."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in per_set:
        groups[SETS[name][1]].append(name)
    header = " | ".join(f"{g} REL | RMS | d1" for g in groups)
    print(f"| N | method | {header} | ms wall | ms CPU |")
    print("|---:|---|" + "---:|---:|---:|" * len(groups) + "---:|---:|")
    wall, cpu = (1000 * t for t in timings.get((0, "predict"), (math.nan, math.nan)))
    print(f"| | (predict, for reference) |{' | | |' * len(groups)} {wall:.0f} | {cpu:.0f} |")
    for n in samples:
        for method in METHODS:
            cells = []
            for names in groups.values():
                mean = np.mean([per_set[name][(n, method)] for name in names], axis=0)
                cells.append(f"{mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f}")
            wall, cpu = (1000 * t for t in timings.get((n, method), (math.nan, math.nan)))
            print(f"| {n} | {method} | {' | '.join(cells)} | {wall:.0f} | {cpu:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 10, 200, 500])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--limit", type=int, help="at most this many frames per set")
    parser.add_argument("--stride", type=int, default=25, help="every Nth 7-Scenes frame")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample draws")
    parser.add_argument("--json", type=Path, help="write the per-set figures here")
    parser.add_argument("--model", default="dpde-lite", help="a registered model")
    args = parser.parse_args()
    names = [n for n in args.sets.split(",") if n]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    model = create_model(args.model)
    predictor = Predictor(model, torch.device("cpu"), fusion=FusionConfig())
    predictor.predict([np.zeros((480, 640, 3), np.uint8)])  # warm-up, not timed
    per_set, timings = evaluate(predictor, names, args.samples, args)
    counts = ", ".join(f"{name} {per_set[name]['frames']}" for name in names)
    print(
        f"# completion  {date.today()}  torch {torch.__version__}  {platform.machine()} "
        f"({torch.get_num_threads()} threads)  {args.model}  seed {args.seed}  frames: {counts}\n"
    )
    print_table(per_set, timings, args.samples)
    if args.json:
        record = {
            name: {f"{k[0]} {k[1]}" if isinstance(k, tuple) else k: v for k, v in fig.items()}
            for name, fig in per_set.items()
        }
        record["ms wall, cpu"] = {
            f"{k[0]} {k[1]}": [1000 * t for t in v] for k, v in timings.items()
        }
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
