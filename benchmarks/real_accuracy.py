"""How right is a weights file in metres on real photos? One table, every real set.

Scores one model on each real RGB-D set in ../shared/data (see its README):

- real-train sets, each on its own: ``middlebury2014`` (15 lab scenes, metric from the
  calibration), ``sevenscenes`` (500 frames of one kitchen), ``tabletop`` (50 close-range
  frames, 0.13-1.4 m). Weights trained on some of them count only on the others.
- real-dev ``nyu-raw`` + ``sun-tum`` as one set (5 indoor frames), and real-dev
  ``middlebury`` (3 scenes, relative depth: median-aligned only). These are for final
  reports: never train or choose on them.

Each set runs through the network once (the photo's camera from the set's intrinsics.json,
for models whose scale follows the camera); from that one prediction it reports the fused
depth (the default output) and the global network alone (unfused), each as predicted
(metric) and median-aligned per image (shape only), beside two baselines: a constant
depth (``--constant``, 2.93 m, the median depth of the synthetic training scenes) and the
same constant scaled by each image's ground-truth median (an oracle that knows the scale
and nothing of the shape). Protocol: the folder protocol of ``dpde eval`` (no crop, 1e-3 <
gt < 10 m, per-image mean), predictions upsampled bilinearly; ``edge F1`` is the depth
boundary F-score (``dpde_cli.metrics.boundary_f1``) of the metric prediction.

    python benchmarks/real_accuracy.py [--model dpde-lite] [--weights FILE]
        [--sets middlebury2014,sevenscenes,...] [--stride N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

from dpde_cli.data import build_datasets
from dpde_cli.device import resolve_device
from dpde_cli.evaluate import stack_samples
from dpde_cli.fusion import FusionConfig
from dpde_cli.metrics import MetricAccumulator, align_median, default_protocol, prepare_eval
from dpde_cli.predict import Predictor
from dpde_cli.registry import create_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    # name: (dataset, folders under ../shared/data, split role)
    "middlebury2014": ("folder", ["real-train/middlebury2014"], "real-train"),
    "sevenscenes": ("folder", ["real-train/sevenscenes-redkitchen"], "real-train"),
    "tabletop": ("folder", ["real-train/tabletop"], "real-train"),
    "nyu-raw+sun-tum": ("folder", ["real-dev/nyu-raw", "real-dev/sun-tum"], "real-dev"),
    "middlebury-dev": ("middlebury", ["real-dev/middlebury"], "real-dev"),
}
VARIANTS = ("fused", "unfused", "constant", "oracle")


def score_set(
    predictor: Predictor, name: str, constant: float, stride: int, edges: bool
) -> dict[str, dict[str, float]]:
    """Every variant's metrics (metric and median-aligned) on one set."""
    kind, folders, _ = SETS[name]
    dataset = build_datasets(kind, [SHARED / f for f in folders], None, {})
    metric = default_protocol(kind)
    relative = kind == "middlebury"  # no metric scale: aligned only
    aligned = replace(metric, alignment="median")
    accs = {
        (variant, mode): MetricAccumulator("image")
        for variant in VARIANTS
        for mode in ("metric", "aligned")
    }
    boundary: dict[str, list[float]] = {"fused": [], "unfused": []}
    for index in range(0, len(dataset), stride):
        batch = stack_samples([dataset[index]], torch)
        out = predictor.predict_tensor(batch["image"], focal=batch["focal"])
        gt, valid = batch["depth"], batch["valid"]
        mask = metric.eval_mask(gt, valid)
        preds = {
            "fused": out.depth.cpu(),
            "unfused": out.depth_unfused.cpu(),
            "constant": torch.full_like(gt, constant),
        }
        preds["oracle"] = align_median(preds["constant"], gt, mask)
        for variant, pred in preds.items():
            for mode, protocol in (("metric", metric), ("aligned", aligned)):
                if relative and mode == "metric":
                    continue
                p, g, m = prepare_eval(pred, gt, valid, protocol)
                accs[(variant, mode)].update(p, g, m, batch["name"])
            if edges and variant in boundary:
                from dpde_cli.metrics import boundary_f1

                p, g, m = prepare_eval(pred, gt, valid, aligned)
                boundary[variant].append(float(boundary_f1(p, g, m)[0]))
    result: dict[str, dict[str, float]] = {}
    for variant in VARIANTS:
        row: dict[str, float] = {}
        for mode in ("metric", "aligned"):
            if accs[(variant, mode)].n_images == 0:
                continue
            values = accs[(variant, mode)].compute()
            suffix = "" if mode == "metric" else "_aligned"
            row.update({f"{k}{suffix}": values[k] for k in ("abs_rel", "d1", "rms")})
        scores = [v for v in boundary.get(variant, []) if v == v]
        if scores:
            row["edge_f1"] = sum(scores) / len(scores)
        row["images"] = accs[(variant, "aligned")].n_images
        result[variant] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dpde-lite")
    parser.add_argument("--weights", default="default", help="a weights file (default: shipped)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--stride", type=int, default=1, help="score every N-th frame")
    parser.add_argument("--constant", type=float, default=2.93)
    parser.add_argument("--no-edges", action="store_true", help="skip the boundary F-score")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"real_accuracy: {SHARED} is not here; the real sets are needed")
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        sys.exit(f"real_accuracy: unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    torch.manual_seed(0)
    device = resolve_device("cpu")
    model = create_model(args.model, weights=args.weights)
    predictor = Predictor(model, device, fusion=FusionConfig())
    print(
        f"# real_accuracy: {args.model}, weights {args.weights}, {date.today()}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"canonical focal {predictor.inference.canonical_focal}, stride {args.stride}"
    )
    header = (
        f"{'set':<16} {'variant':<9} {'n':>4} {'REL':>6} {'d1':>6} {'RMS':>6} "
        f"{'REL al':>7} {'d1 al':>6} {'edgeF1':>6}"
    )
    print(header)
    print("-" * len(header))
    report = {}
    for name in names:
        start = time.perf_counter()
        rows = score_set(predictor, name, args.constant, args.stride, not args.no_edges)
        report[name] = rows
        for variant, row in rows.items():
            label = variant if variant != "constant" else f"const {args.constant:g}"

            def cell(key: str, width: int, row: dict = row) -> str:
                value = row.get(key)
                return f"{value:>{width}.3f}" if value is not None else " " * (width - 1) + "-"

            print(
                f"{name:<16} {label:<9} {int(row['images']):>4} {cell('abs_rel', 6)} "
                f"{cell('d1', 6)} {cell('rms', 6)} {cell('abs_rel_aligned', 7)} "
                f"{cell('d1_aligned', 6)} {cell('edge_f1', 6)}"
            )
        print(f"# {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if args.json:
        meta = {"model": args.model, "weights": args.weights, "stride": args.stride}
        args.json.write_text(json.dumps({"meta": meta, "sets": report}, indent=1))


if __name__ == "__main__":
    main()
