"""How the metric scale of a prediction depends on the camera's focal length.

A network trained on one camera (dpde's models: the NYUv2 Kinect, about 63 degrees across)
judges distance by apparent size, so a photo from a longer lens should come out nearer by
the ratio of the focal lengths. This script measures by how much, against the ratio
k = focal length / the default camera's (``geometry.resolve_intrinsics`` with no source:
the Kinect scaled to the image; k = 1 for the training camera):

- **Renders**: scenes of ``dpde_cli.data.synthetic`` at the model's size with
  ``random_focal`` (focal length log-uniform in 0.5-2x the Kinect's), seeds from 900000 (no
  shipped weights trained on them). The slope of log(median prediction / median truth) on
  log k is -1 where the network fully follows apparent size.
- **Real frames**: centre crops of the RGB-D frames of ../shared/data/real-dev (nyu-raw,
  sun-tum) to a fraction c of the width and height. A crop is exactly the picture a camera
  with a focal length 1/c times longer would take (k = 1/c, less resolution). The exponent
  alpha = -log(ratio at c / ratio at c = 1) / log k is 1 where the scale follows k fully.

Both print AbsRel of the prediction as it is and multiplied by k (the full correction a
tool could apply from EXIF), with the default predictor (fused). Figures only; nothing is
fitted.

    python benchmarks/focal_scale.py [--scenes 100] [--data ../shared/data/real-dev]
        [--model dpde-lite] [--weights FILE]
"""

from __future__ import annotations

import argparse
import math
import platform
from datetime import date
from pathlib import Path

import numpy as np
import torch

from dpde_cli.data.folder import FolderDataset
from dpde_cli.data.synthetic import SceneConfig, render_scene
from dpde_cli.fusion import FusionConfig
from dpde_cli.geometry import Intrinsics, resolve_intrinsics
from dpde_cli.metrics import compute_metrics
from dpde_cli.predict import Predictor
from dpde_cli.registry import create_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"
CROPS = (1.0, 0.8, 0.65, 0.5)
FIRST_SEED = 900000


def focal_ratio(camera: Intrinsics) -> float:
    """k: the camera's focal length over the default camera's for the same image size."""
    default, _ = resolve_intrinsics(camera.width, camera.height)
    return math.sqrt(camera.fx * camera.fy / (default.fx * default.fy))


def scores(pred: torch.Tensor, gt: torch.Tensor, k: float) -> tuple[float, float, float]:
    """(median pred / median gt, AbsRel as predicted, AbsRel of pred x k) on valid pixels of
    (H, W) maps (the protocol of the folder set: 1e-3 < gt < 10 m)."""
    mask = ((gt > 1e-3) & (gt < 10.0))[None, None]
    pred, gt = pred[None, None].double(), gt[None, None].double()
    return (
        float(pred[mask].median() / gt[mask].median()),
        float(compute_metrics(pred, gt, mask)["abs_rel"][0]),
        float(compute_metrics(pred * k, gt, mask)["abs_rel"][0]),
    )


def renders(predictor: Predictor, count: int) -> None:
    height, width = predictor.inference.input_size
    config = SceneConfig(
        height=height, width=width, random_focal=True, focal_scale_range=(0.5, 2.0)
    )
    rows = []
    for seed in range(FIRST_SEED, FIRST_SEED + count):
        scene = render_scene(seed, config)
        fx, fy, cx, cy = (float(v) for v in scene["intrinsics"])
        k = focal_ratio(Intrinsics(fx, fy, cx, cy, width, height))
        pred = predictor.predict_tensor(scene["image"][None]).depth[0, 0].cpu()
        rows.append((k, *scores(pred, scene["depth"][0], k)))
    a = np.array(rows)
    slope = np.polyfit(np.log(a[:, 0]), np.log(a[:, 1]), 1)[0]
    print(f"\n### Renders: {count} scenes at {height}x{width}, k in 0.5-2 (seeds {FIRST_SEED}+)\n")
    print(f"Slope of log(median pred / median truth) on log k: {slope:.2f} (-1: fully).\n")
    print("| k | scenes | median pred / truth | AbsRel | AbsRel of pred x k |")
    print("|---|---:|---:|---:|---:|")
    for low, high in ((0.0, 0.8), (0.8, 1.25), (1.25, 9.0)):
        m = (a[:, 0] >= low) & (a[:, 0] < high)
        if m.any():
            label = f"{low:g}-{high:g}" if high < 9 else f">= {low:g}"
            print(
                f"| {label} | {int(m.sum())} | {np.median(a[m, 1]):.3f} | "
                f"{a[m, 2].mean():.3f} | {a[m, 3].mean():.3f} |"
            )
    print(
        f"| all | {count} | {np.median(a[:, 1]):.3f} | {a[:, 2].mean():.3f} | "
        f"{a[:, 3].mean():.3f} |"
    )


def real_crops(predictor: Predictor, data: Path) -> None:
    samples = [s for name in ("nyu-raw", "sun-tum") for s in FolderDataset(data / name)]
    by_crop: dict[float, list[tuple[float, ...]]] = {c: [] for c in CROPS}
    for sample in samples:
        image, gt = sample["image"], sample["depth"][0]
        fx, fy, cx, cy = (float(v) for v in sample["intrinsics"])
        full_h, full_w = gt.shape
        k_full = focal_ratio(Intrinsics(fx, fy, cx, cy, full_w, full_h))
        full_ratio = None
        for c in CROPS:
            h, w = 2 * round(full_h * c / 2), 2 * round(full_w * c / 2)
            y0, x0 = (full_h - h) // 2, (full_w - w) // 2
            k = focal_ratio(Intrinsics(fx, fy, cx - x0, cy - y0, w, h))
            crop = image[:, y0 : y0 + h, x0 : x0 + w][None]
            pred = predictor.predict_tensor(crop).depth[0, 0].cpu()
            ratio, rel, rel_k = scores(pred, gt[y0 : y0 + h, x0 : x0 + w], k)
            full_ratio = full_ratio or ratio
            alpha = -math.log(ratio / full_ratio) / math.log(k / k_full) if c < 1 else math.nan
            by_crop[c].append((k, ratio, rel, rel_k, alpha))
    print(f"\n### Real frames: centre crops of {len(samples)} frames of {data}\n")
    print("| crop c | k | median pred / truth | AbsRel | AbsRel of pred x k | alpha |")
    print("|---|---:|---:|---:|---:|---:|")
    for c, rows in by_crop.items():
        a = np.array(rows)
        alpha = "-" if c == 1.0 else f"{np.median(a[:, 4]):.2f}"
        print(
            f"| {c:g} | {a[:, 0].mean():.2f} | {np.median(a[:, 1]):.3f} | {a[:, 2].mean():.3f} | "
            f"{a[:, 3].mean():.3f} | {alpha} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=100, help="renders to measure")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="real-dev folder")
    parser.add_argument("--model", default="dpde-lite")
    parser.add_argument("--weights", help="a weights file instead of the shipped one")
    args = parser.parse_args()
    model = create_model(args.model, weights=args.weights or "default")
    predictor = Predictor(model, torch.device("cpu"), fusion=FusionConfig())
    print(
        f"# focal_scale  {date.today()}  torch {torch.__version__}  {platform.machine()}  "
        f"{args.model} ({args.weights or model.spec.file}), "
        "fused"
    )
    renders(predictor, args.scenes)
    if (args.data / "nyu-raw").is_dir():
        real_crops(predictor, args.data)
    else:
        print(f"\n(real frames skipped: no {args.data / 'nyu-raw'})")


if __name__ == "__main__":
    main()
