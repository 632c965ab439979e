"""Flat walls and floors, square corners: real RGB-D frames through dpde's back-projection.

For each frame of ../shared/data/real-dev (nyu-raw, sun-tum: uint16 mm depth, intrinsics per
frame), the ground-truth depth is back-projected with `geometry.backproject` and a plane is
fitted (least squares, SVD) to the points of hand-picked regions of walls, floors and
ceilings. Two figures per region:

- RMS distance of the points to their plane, in mm. A back-projection that is not the
  pinhole model (ray distance taken as z-depth, an off-by-one pixel grid, rows and columns
  swapped) bends planes; a wrong focal length or principal point does *not* (it maps 3D space
  linearly, planes stay planes), so flatness checks the arithmetic, not the intrinsics.
- Angles between planes that meet at right angles (floor and wall) or are parallel (two
  walls of a corridor, floor and ceiling). These do depend on the intrinsics: the script
  shows them with the true camera, with its principal point forced to the image centre, and
  with the hard-coded fields of view peer tools use (60 and 90 degrees).

The pixels kept are those `dpde pointcloud` keeps (`pointcloud.point_mask`, default
5% edge threshold). Kinect depth is quantised (about 2.85e-3 z^2 m per disparity step: 3 mm
at 1 m, 11 mm at 2 m, 46 mm at 4 m), which sets the floor of the residuals.

    python benchmarks/pointcloud_planes.py [--data ../shared/data/real-dev]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from dpde_cli.geometry import Intrinsics, backproject
from dpde_cli.io import read_depth
from dpde_cli.pointcloud import point_mask

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"

# (x0, y0, x1, y1) pixel boxes, end-exclusive, picked on the colour images.
REGIONS = {
    "nyu-raw/basement_00000": {
        "floor": (120, 400, 420, 465),
        "floor beyond the door": (470, 290, 590, 340),
        "wooden wall": (372, 70, 418, 270),
    },
    "nyu-raw/basement_00050": {
        "floor": (160, 400, 360, 465),
        "left brick wall": (40, 300, 120, 440),
    },
    "nyu-raw/basement_00100": {
        "floor": (90, 440, 330, 468),
        "wooden wall": (350, 60, 395, 250),
    },
    "sun-tum/sun_0": {
        "floor": (200, 410, 400, 470),
        "left wall": (125, 80, 180, 360),
        "cabinet front": (420, 110, 455, 390),
        "ceiling": (200, 25, 460, 60),
    },
    "sun-tum/tum_0": {
        "floor": (250, 390, 360, 470),
        "partition board": (320, 20, 460, 100),
    },
}
# (frame, region a, region b, the angle between them in degrees)
ANGLES = [
    ("nyu-raw/basement_00000", "floor", "wooden wall", 90),
    ("nyu-raw/basement_00000", "floor", "floor beyond the door", 0),
    ("nyu-raw/basement_00050", "floor", "left brick wall", 90),
    ("nyu-raw/basement_00100", "floor", "wooden wall", 90),
    ("sun-tum/sun_0", "floor", "left wall", 90),
    ("sun-tum/sun_0", "floor", "cabinet front", 90),
    ("sun-tum/sun_0", "left wall", "cabinet front", 90),
    ("sun-tum/sun_0", "floor", "ceiling", 0),
    ("sun-tum/tum_0", "floor", "partition board", 90),
]


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares plane of (N, 3) points: (unit normal, signed distances of the points)."""
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return normal, centred @ normal


def region_points(depth: np.ndarray, camera: Intrinsics, box: tuple[int, ...]) -> np.ndarray:
    """(N, 3) metres: the kept pixels of a box, back-projected."""
    x0, y0, x1, y1 = box
    keep = np.zeros(depth.shape, dtype=bool)
    keep[y0:y1, x0:x1] = True
    keep &= point_mask(depth)
    return backproject(depth.astype(np.float64), camera)[keep]


def plane_angle(n1: np.ndarray, n2: np.ndarray) -> float:
    """Angle in degrees between two planes, in [0, 90]."""
    return math.degrees(math.acos(min(1.0, abs(float(n1 @ n2)))))


def cameras(true: Intrinsics) -> dict[str, Intrinsics]:
    """The true camera and the wrong ones to compare it with."""
    w, h = true.width, true.height
    return {
        "true": true,
        "centred": Intrinsics(true.fx, true.fy, (w - 1) / 2, (h - 1) / 2, w, h),
        "fov 60": Intrinsics.from_fov(60.0, w, h),
        "fov 90": Intrinsics.from_fov(90.0, w, h),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not found (the shared RGB-D frames)")

    frames = {}
    for key in REGIONS:
        dataset, stem = key.split("/")
        values = json.loads((args.data / dataset / "intrinsics.json").read_text())[stem]
        depth = read_depth(args.data / dataset / "depth" / f"{stem}.png", scale=1000.0)
        height, width = depth.shape
        frames[key] = (depth, Intrinsics(*values, width, height))

    print("## Plane fits (true intrinsics)\n")
    print("| frame | region | points | median depth (m) | RMS residual (mm) | p90 abs (mm) |")
    print("|---|---|---:|---:|---:|---:|")
    normals: dict[tuple[str, str, str], np.ndarray] = {}
    for key, regions in REGIONS.items():
        depth, true = frames[key]
        for name, box in regions.items():
            for label, camera in cameras(true).items():
                points = region_points(depth, camera, box)
                normal, residual = fit_plane(points)
                normals[key, name, label] = normal
                if label == "true":
                    rms = 1000 * math.sqrt(float(np.mean(residual**2)))
                    p90 = 1000 * float(np.percentile(np.abs(residual), 90))
                    print(
                        f"| {key} | {name} | {len(points)} | {np.median(points[:, 2]):.2f} "
                        f"| {rms:.1f} | {p90:.1f} |"
                    )

    labels = list(cameras(next(iter(frames.values()))[1]))
    print("\n## Angles between planes (degrees), by camera model\n")
    print("| frame | planes | expected | " + " | ".join(labels) + " |")
    print("|---|---|---:|" + "---:|" * len(labels))
    for key, a, b, expected in ANGLES:
        angles = [plane_angle(normals[key, a, lab], normals[key, b, lab]) for lab in labels]
        cells = " | ".join(f"{angle:.1f}" for angle in angles)
        print(f"| {key} | {a} / {b} | {expected} | {cells} |")


if __name__ == "__main__":
    main()
