"""Middlebury stereo: colour images with ground-truth disparity, as relative depth.

Layout (as in ``../shared/data/real-dev/middlebury``):

    root/rgb/<stem>.png          colour (left view)
    root/disparity/<stem>.png    8-bit disparity, pixel value = disparity_scale x disparity
    root/meta.json               {"<stem>": {"disparity_scale": 4, "unknown": 0,
                                             "dmin": 200, ...}, ...}

Per stem, ``meta.json`` gives ``disparity_scale`` (default 1), ``unknown`` (the pixel
value of "no ground truth", default 0) and ``dmin`` (the disparity offset of the 2005 /
2006 sets, default 0), and optionally ``focal_px`` and ``baseline_m``.

Depth: ``depth = k / (value / disparity_scale + dmin)`` with k = focal_px * baseline_m
(metres) when both are given, else k = 1 (relative depth, in inverse pixels): the
paper's "simple division". With no absolute scale, metrics need an alignment, which the
default Middlebury protocol sets (median scaling). Depth is computed at the native
resolution (where dmin is defined) and then resized, so the resize never mixes
disparities.

Size: the paper rescales images and maps "to 380 x 430 pixels"; Middlebury views are
landscape (450 x 375, 695 x 555, W x H), so this is read as **H x W = (380, 430)**, the
reading that keeps the images landscape. Images are resized bilinearly and depth
nearest (no invented depth across object borders, no bleeding of unknown pixels).

Intrinsics: [focal_px, focal_px, cx, cy] when ``focal_px`` is given, else
[nan, nan, cx, cy] with the principal point at the image centre.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from dpde_cli.data._common import (
    check_split,
    finite_number,
    make_sample,
    parse_size,
    resize_nearest,
    resize_rgb,
    scale_intrinsics,
    unknown_intrinsics,
)
from dpde_cli.errors import InputError

PAPER_SIZE = (380, 430)
"""(height, width) of the paper's Middlebury images."""
SPLITS = ("test", "all")
META_FILE = "meta.json"


def disparity_to_depth(
    value: np.ndarray,
    disparity_scale: float = 1.0,
    unknown: float = 0.0,
    dmin: float = 0.0,
    depth_scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Middlebury disparity PNG values to depth.

    Args:
        value: (H, W) raw pixel values.
        disparity_scale: pixel value per pixel of disparity.
        unknown: pixel value marking no ground truth.
        dmin: disparity offset added to the stored disparity (pixels).
        depth_scale: focal (px) x baseline (m) for metric depth, 1 for relative depth.

    Returns:
        (depth, valid): (H, W) float32 depth (0 where invalid) and (H, W) bool.
    """
    value = np.asarray(value, dtype=np.float64)
    disparity = value / float(disparity_scale) + float(dmin)
    valid = (value != unknown) & np.isfinite(disparity) & (disparity > 0)
    depth = np.zeros(value.shape, dtype=np.float64)
    depth[valid] = depth_scale / disparity[valid]
    return depth.astype(np.float32), valid


_POSITIVE = ("disparity_scale", "focal_px", "baseline_m")
_ANY = ("unknown", "dmin")


def _check_entry(meta_path: Path, stem: str, entry: dict) -> None:
    """Refuse a meta.json entry whose numbers are not numbers (or not positive where a
    scale must be), naming the file, the image and the key."""
    for key in (*_POSITIVE, *_ANY):
        if key not in entry or (key in ("focal_px", "baseline_m") and entry[key] is None):
            continue
        value = entry[key]
        if not finite_number(value) or (key in _POSITIVE and value <= 0):
            kind = "a positive number" if key in _POSITIVE else "a number"
            raise InputError(meta_path, f"{stem}: {key} must be {kind}, got {value!r}")


class Middlebury(Dataset):
    """Middlebury colour + disparity pairs as dpde samples with relative depth.

    Args:
        root: folder with ``rgb/``, ``disparity/`` and ``meta.json``.
        split: "test" or "all" (the same: Middlebury is a test set only).
        size: (height, width); default the paper's (380, 430); None keeps each native size.

    Attributes:
        metric_depth: whether every image has ``focal_px`` and ``baseline_m`` (depth in
            metres); else depth is relative and only an aligned evaluation means anything.
        ground_truth: what the depth is, in words, for evaluation reports.

    Raises:
        InputError: missing folder, meta entry or disparity file (named).

    Example:
        >>> ds = Middlebury("../shared/data/real-dev/middlebury")
        >>> ds[0]["depth"].shape
        torch.Size([1, 380, 430])
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        size: tuple[int, int] | None = PAPER_SIZE,
    ) -> None:
        self.root = Path(root).expanduser()
        self.split = check_split(split, SPLITS, "middlebury")
        self.size = parse_size(size)
        meta_path = self.root / META_FILE
        if not meta_path.is_file():
            raise InputError(
                meta_path, "no such file (per-image disparity_scale, unknown, dmin are needed)"
            )
        try:
            self.meta: dict[str, dict] = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(meta_path, f"cannot read JSON ({exc})") from exc
        rgb_dir = self.root / "rgb"
        if not rgb_dir.is_dir():
            raise InputError(rgb_dir, "no such folder")
        self.stems: list[str] = []
        for rgb_path in sorted(rgb_dir.glob("*.png")):
            stem = rgb_path.stem
            disparity_path = self.root / "disparity" / f"{stem}.png"
            if not disparity_path.is_file():
                raise InputError(disparity_path, f"no disparity for {rgb_path.name}")
            if not isinstance(self.meta.get(stem), dict):
                raise InputError(meta_path, f"no entry for {stem!r}")
            _check_entry(meta_path, stem, self.meta[stem])
            self.stems.append(stem)
        if not self.stems:
            raise InputError(rgb_dir, "no .png images")
        self.metric_depth = all(
            self.meta[s].get("focal_px") and self.meta[s].get("baseline_m") for s in self.stems
        )
        self.ground_truth = (
            "Middlebury metric depth focal_px x baseline_m / (disparity + dmin)"
            if self.metric_depth
            else "Middlebury relative depth 1 / (disparity + dmin), no metric scale "
            "(meta.json gives no focal_px and baseline_m)"
        )

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> dict:
        from dpde_cli.io import read_depth, read_image

        if not 0 <= index < len(self):
            raise IndexError(index)
        stem = self.stems[index]
        info = self.meta[stem]
        rgb = read_image(self.root / "rgb" / f"{stem}.png")
        disparity_path = self.root / "disparity" / f"{stem}.png"
        value = read_depth(disparity_path, 1.0, what="disparity", eight_bit=True)  # raw values
        if value.shape != rgb.shape[:2]:
            raise InputError(
                disparity_path, f"size {value.shape} differs from the image's {rgb.shape[:2]}"
            )
        focal = info.get("focal_px")
        baseline = info.get("baseline_m")
        depth_scale = float(focal) * float(baseline) if focal and baseline else 1.0
        depth, valid = disparity_to_depth(
            value,
            disparity_scale=float(info.get("disparity_scale", 1.0)),
            unknown=float(info.get("unknown", 0.0)),
            dmin=float(info.get("dmin", 0.0)),
            depth_scale=depth_scale,
        )
        native = rgb.shape[:2]
        if focal:
            cx, cy = (native[1] - 1) / 2.0, (native[0] - 1) / 2.0
            intrinsics = np.array([focal, focal, cx, cy], dtype=np.float32)
        else:
            intrinsics = unknown_intrinsics(native)
        if self.size is not None:
            intrinsics = scale_intrinsics(intrinsics, native, self.size)
            rgb = resize_rgb(rgb, self.size)
            depth = resize_nearest(depth, self.size)
            valid = resize_nearest(valid, self.size)
        return make_sample(rgb, depth, valid, intrinsics, stem)
