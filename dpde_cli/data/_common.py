"""Helpers shared by the dataset modules: the sample dict, resizing, intrinsics.

Every dpde dataset yields the same sample dict:

    image       (3, H, W) float32 RGB in [0, 1]
    depth       (1, H, W) float32 metres (or relative units where a dataset says so),
                0 where invalid
    valid       (1, H, W) bool
    intrinsics  (4,) float32 [fx, fy, cx, cy] in pixels for this image size; NaN where a
                dataset has no calibration (fx, fy), with cx, cy at the image centre
    name        str, unique within the dataset

Pixel convention for intrinsics: pixel (x, y) has its centre at integer (x, y), so a
resize by s maps a coordinate u to (u + 0.5) * s - 0.5 and a focal length f to f * s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dpde_cli.errors import InputError, UsageError

Size = tuple[int, int]
"""(height, width) in pixels."""


def finite_number(value: object) -> bool:
    """Whether a value read from JSON is a finite number (true and false are not)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value)


def check_split(split: str, allowed: Sequence[str], dataset: str) -> str:
    """Return ``split`` if it is one of ``allowed``, else raise UsageError."""
    if split not in allowed:
        raise UsageError(f"{dataset} has no split {split!r}; use one of {', '.join(allowed)}")
    return split


def parse_size(size: Sequence[int] | None) -> Size | None:
    """Validate an optional (height, width) pair of positive ints."""
    if size is None:
        return None
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise UsageError(f"size must be (height, width) in pixels, got {tuple(size)}")
    return int(size[0]), int(size[1])


def resize_rgb(rgb: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) uint8 image to size = (height, width), with PIL."""
    from PIL import Image

    if rgb.shape[:2] == size:
        return rgb
    image = Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).copy()


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each destination pixel for a centre-aligned nearest resize.

    ``floor((i + 0.5) * src / dst)``: PIL's NEAREST and torch's "nearest-exact".
    """
    idx = np.floor((np.arange(dst) + 0.5) * (src / dst)).astype(np.int64)
    return np.clip(idx, 0, src - 1)


def resize_nearest(array: np.ndarray, size: Size) -> np.ndarray:
    """Nearest-neighbour resize of a (H, W) map (depth, disparity, mask) to (height, width).

    Nearest keeps every value a measured one: no depth is invented between a foreground
    and a background pixel, and invalid pixels (0) do not bleed into valid ones.
    """
    if array.shape[:2] == size:
        return array
    rows = nearest_indices(array.shape[0], size[0])
    cols = nearest_indices(array.shape[1], size[1])
    return array[rows[:, None], cols[None, :]]


def scale_intrinsics(intrinsics: Sequence[float], src: Size, dst: Size) -> np.ndarray:
    """[fx, fy, cx, cy] of an image of size src = (H, W) for the same image resized to dst.

    Returns:
        (4,) float32.
    """
    from dpde_cli.geometry import rescale_pinhole

    values = tuple(float(v) for v in intrinsics)
    scaled = rescale_pinhole(values, (dst[1] / src[1], dst[0] / src[0]))
    return np.array(scaled, dtype=np.float32)


def unknown_intrinsics(size: Size) -> np.ndarray:
    """[nan, nan, cx, cy] with the principal point at the image centre, for uncalibrated sets."""
    height, width = size
    return np.array([np.nan, np.nan, (width - 1) / 2.0, (height - 1) / 2.0], dtype=np.float32)


def make_sample(
    rgb: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    intrinsics: np.ndarray,
    name: str,
) -> dict[str, torch.Tensor | str]:
    """Build the sample dict from numpy arrays.

    Args:
        rgb: (H, W, 3) uint8.
        depth: (h, w) float, metres; set to 0 where not valid.
        valid: (h, w) bool.
        intrinsics: (4,) [fx, fy, cx, cy] for the image size.
        name: sample name.

    Returns:
        The sample dict described in this module's docstring.
    """
    valid = np.asarray(valid, dtype=bool) & np.isfinite(depth) & (depth > 0)
    depth = np.where(valid, depth, 0.0).astype(np.float32)
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
    return {
        "image": image,
        "depth": torch.from_numpy(np.ascontiguousarray(depth))[None],
        "valid": torch.from_numpy(np.ascontiguousarray(valid))[None],
        "intrinsics": torch.as_tensor(np.asarray(intrinsics, dtype=np.float32)),
        "name": name,
    }


def find_dir(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first existing ``root / candidate`` directory, else InputError naming them all."""
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise InputError(root, f"no {what} folder (looked for {', '.join(candidates)})")
