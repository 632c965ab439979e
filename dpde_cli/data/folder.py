"""A folder of RGB-D pairs: the simplest way to evaluate on your own data.

Layout (that of ``../shared/data/real-dev/nyu-raw``):

    DIR/rgb/<stem>.png | .jpg | .jpeg   colour (EXIF orientation applied)
    DIR/depth/<stem>.png                16-bit depth, ``depth_scale`` units per metre
                                        (default 1000: millimetres), 0 = no measurement
    DIR/intrinsics.json                 optional {"<stem>": [fx, fy, cx, cy]} in pixels
                                        for that image size

Without ``intrinsics.json`` (or with ``intrinsics=`` given) every image gets the same
intrinsics; with neither, [nan, nan, cx, cy] with the principal point at the centre.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from dpde_cli.data._common import (
    finite_number,
    make_sample,
    parse_size,
    resize_nearest,
    resize_rgb,
    scale_intrinsics,
    unknown_intrinsics,
)
from dpde_cli.errors import InputError, UsageError

RGB_EXTENSIONS = (".png", ".jpg", ".jpeg")
SPLITS = ("all",)
"""A folder has no splits: every pair is one set."""
INTRINSICS_FILE = "intrinsics.json"


class FolderDataset(Dataset):
    """RGB-D pairs from ``DIR/rgb`` and ``DIR/depth`` as dpde samples.

    Args:
        root: the folder DIR.
        split: "all", the only one: a folder has no splits, so a "test" or "train" split
            would score or train on the same pairs under a name that says otherwise.
        depth_scale: depth PNG units per metre (1000 = millimetres, 256 = KITTI).
        size: optional (height, width): image bilinear, depth nearest.
        intrinsics: [fx, fy, cx, cy] for every image, overriding ``intrinsics.json``.

    Raises:
        InputError: missing folder, a colour image without its depth file (named), a
            stem missing from intrinsics.json, or sizes that differ.
        UsageError: a split other than "all".

    Example:
        >>> ds = FolderDataset("../shared/data/real-dev/nyu-raw")
        >>> ds[0]["depth"].max()
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        depth_scale: float = 1000.0,
        size: tuple[int, int] | None = None,
        intrinsics: Sequence[float] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        if split not in SPLITS:
            raise UsageError(f"folder has no split {split!r}: a folder is one set, split 'all'")
        self.split = split
        self.size = parse_size(size)
        if not 0 < depth_scale < math.inf:
            raise UsageError(f"depth_scale must be a positive number, got {depth_scale}")
        self.depth_scale = float(depth_scale)
        if not self.root.is_dir():
            what = "a file, not a folder" if self.root.exists() else "no such folder"
            raise InputError(self.root, f"{what} (expected DIR/rgb and DIR/depth)")
        for sub in ("rgb", "depth"):
            if not (self.root / sub).is_dir():
                raise InputError(self.root / sub, "no such folder (expected DIR/rgb and DIR/depth)")
        rgb_dir = self.root / "rgb"
        self.items: list[tuple[str, Path, Path]] = []
        seen: set[str] = set()
        for path in sorted(rgb_dir.iterdir()):
            if path.suffix.lower() not in RGB_EXTENSIONS or not path.is_file():
                continue
            if path.stem in seen:
                raise InputError(path, f"two colour images share the stem {path.stem!r}")
            seen.add(path.stem)
            depth_path = self.root / "depth" / f"{path.stem}.png"
            if not depth_path.is_file():
                raise InputError(depth_path, f"no depth for {path.name}")
            self.items.append((path.stem, path, depth_path))
        if not self.items:
            raise InputError(rgb_dir, "no .png / .jpg images")
        self.fixed_intrinsics = None
        self.intrinsics_map: dict[str, list[float]] | None = None
        if intrinsics is not None:
            if len(intrinsics) != 4:
                raise UsageError("intrinsics must be [fx, fy, cx, cy]")
            self.fixed_intrinsics = np.asarray(intrinsics, dtype=np.float32)
        elif (self.root / INTRINSICS_FILE).is_file():
            self.intrinsics_map = self._read_intrinsics(self.root / INTRINSICS_FILE)

    def _read_intrinsics(self, path: Path) -> dict[str, list[float]]:
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot read JSON ({exc})") from exc
        for stem, _, _ in self.items:
            value = content.get(stem) if isinstance(content, dict) else None
            if (
                not isinstance(value, list)
                or len(value) != 4
                or not all(isinstance(v, (int, float)) for v in value)
            ):
                raise InputError(path, f"no [fx, fy, cx, cy] entry for {stem!r}")
            if not all(map(finite_number, value)) or min(value[:2]) <= 0:
                raise InputError(
                    path, f"{stem}: [fx, fy, cx, cy] must be finite with fx, fy > 0, got {value}"
                )
        return content

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        from dpde_cli.io import read_depth, read_image

        if not 0 <= index < len(self):
            raise IndexError(index)
        stem, rgb_path, depth_path = self.items[index]
        rgb = read_image(rgb_path)
        depth = read_depth(depth_path, self.depth_scale)  # 8-bit and colour refused
        if depth.shape != rgb.shape[:2]:
            raise InputError(
                depth_path,
                f"size {depth.shape} differs from the image's {rgb.shape[:2]} ({rgb_path.name})",
            )
        if self.fixed_intrinsics is not None:
            intrinsics = self.fixed_intrinsics
        elif self.intrinsics_map is not None:
            intrinsics = np.asarray(self.intrinsics_map[stem], dtype=np.float32)
        else:
            intrinsics = unknown_intrinsics(rgb.shape[:2])
        if self.size is not None:
            intrinsics = scale_intrinsics(intrinsics, rgb.shape[:2], self.size)
            rgb = resize_rgb(rgb, self.size)
            depth = resize_nearest(depth, self.size)
        return make_sample(rgb, depth, depth > 0, intrinsics, stem)
