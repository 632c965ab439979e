"""Make3D (Saxena et al.): 400 training and 134 test outdoor images with laser depth.

On-disk layout (the official archives, extracted side by side under ``root``):

    test   Test134/img-<stem>.jpg            Gridlaserdata/depth_sph_corr-<stem>.mat
    train  Train400Img/img-<stem>.jpg        Train400Depth/depth_sph_corr-<stem>.mat

The images are 1704 x 2272 (W x H, portrait). Each .mat holds ``Position3DGrid``, a
55 x 305 x 4 array; channel 4 (index 3) is the depth along the ray in metres. As in the
common evaluation code (e.g. monodepth2's Make3D scripts), the grid's first axis is the
image's vertical axis: the 55 x 305 grid covers the whole image and is resized to it.

Protocol choices (the paper, Sec. 4.1: "all the images [are adjusted] to 460 x 345
pixels" with bilinear interpolation):

* Size: images are resized to 460 x 345 as **H x W** (default ``size=(460, 345)``). The
  paper writes "460 x 345" without an order; 460 / 345 = 2272 / 1704 = 4:3, so H x W is
  the reading that keeps the portrait aspect (W x H would squash every image by 1.78).
* Ground-truth resolution: ``depth_resolution="image"`` (default) resizes the depth
  (nearest, so every value stays a laser measurement) to the same 460 x 345: image,
  prediction and ground truth share one grid and metrics are computed there, which is
  how we read the paper's "all the images" (it does not say more). ``"native"`` keeps the
  55 x 305 grid, and the evaluation then resizes the prediction to it
  (``EvalProtocol.upsample``), for comparisons made at the laser resolution. Which of the
  two the published Make3D tables used is not stated in them; the choice shifts RMS.
* The C1 error (ground truth < 70 m) is the evaluation protocol's ``max_depth``, not a
  loader choice: the loader marks every positive, finite laser depth as valid.

Make3D has no published camera calibration: intrinsics are [nan, nan, cx, cy] with the
principal point at the image centre. One Test134 JPEG is reported truncated; with
``allow_truncated`` (default) it is decoded as far as it goes (the rest is grey) rather
than dropped, so the test set keeps its 134 images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from dpde_cli.data._common import (
    check_split,
    find_dir,
    make_sample,
    parse_size,
    resize_nearest,
    resize_rgb,
    unknown_intrinsics,
)
from dpde_cli.errors import InputError, UsageError

PAPER_SIZE = (460, 345)
"""(height, width) of the paper's Make3D images."""
SPLITS = ("train", "test")
_IMAGE_DIRS = {"test": ("Test134", "Test134Img"), "train": ("Train400Img",)}
_DEPTH_DIRS = {
    "test": ("Gridlaserdata", "Test134Depth", "Test134Depth/Gridlaserdata"),
    "train": ("Train400Depth", "Train400Depth/Gridlaserdata"),
}
IMAGE_PREFIX = "img-"
DEPTH_PREFIX = "depth_sph_corr-"


def read_make3d_depth(path: str | Path) -> np.ndarray:
    """Depth channel of a Make3D ``depth_sph_corr-*.mat``.

    Returns:
        (55, 305) float32 metres: ``Position3DGrid[:, :, 3]``.

    Raises:
        InputError: unreadable file, missing key or wrong shape.
    """
    import scipy.io

    path = Path(path)
    try:
        content = scipy.io.loadmat(path, variable_names=["Position3DGrid"])
    except Exception as exc:  # scipy raises several kinds on a bad file
        raise InputError(path, f"cannot read as a MATLAB file ({exc})") from exc
    grid = content.get("Position3DGrid")
    if grid is None:
        raise InputError(path, "no 'Position3DGrid' array")
    if grid.ndim != 3 or grid.shape[2] != 4:
        raise InputError(path, f"Position3DGrid has shape {grid.shape}, expected (H, W, 4)")
    return np.asarray(grid[:, :, 3], dtype=np.float32)


def _read_rgb(path: Path, allow_truncated: bool) -> np.ndarray:
    """io.read_image, retrying a truncated JPEG with PIL's LOAD_TRUNCATED_IMAGES."""
    from PIL import ImageFile

    from dpde_cli.io import read_image

    try:
        return read_image(path)
    except InputError as exc:
        if not (allow_truncated and "truncated" in str(exc)):
            raise
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        return read_image(path)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


class Make3D(Dataset):
    """Make3D images with laser depth as dpde samples.

    Args:
        root: folder holding the extracted archives (see the module docstring).
        split: "test" (Test134) or "train" (Train400).
        size: (height, width) of the image; default the paper's (460, 345); None keeps
            the original 2272 x 1704.
        depth_resolution: "image" = depth resized (nearest) to ``size``; "native" = the
            55 x 305 laser grid.
        allow_truncated: decode truncated JPEGs as far as they go.

    Raises:
        InputError: a folder or a depth file for an image is missing.

    Example:
        >>> ds = Make3D("~/data/make3d", split="test")
        >>> ds[0]["image"].shape, ds[0]["depth"].shape
        (torch.Size([3, 460, 345]), torch.Size([1, 460, 345]))
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        size: tuple[int, int] | None = PAPER_SIZE,
        depth_resolution: Literal["image", "native"] = "image",
        allow_truncated: bool = True,
    ) -> None:
        self.root = Path(root).expanduser()
        self.split = check_split(split, SPLITS, "make3d")
        self.size = parse_size(size)
        if depth_resolution not in ("image", "native"):
            raise UsageError(
                f"depth_resolution must be 'image' or 'native', got {depth_resolution!r}"
            )
        self.depth_resolution = depth_resolution
        self.allow_truncated = allow_truncated
        image_dir = find_dir(self.root, _IMAGE_DIRS[split], f"Make3D {split} image")
        depth_dir = find_dir(self.root, _DEPTH_DIRS[split], f"Make3D {split} depth")
        self.pairs: list[tuple[str, Path, Path]] = []
        for image_path in sorted(image_dir.glob(f"{IMAGE_PREFIX}*.jpg")):
            stem = image_path.stem[len(IMAGE_PREFIX) :]
            depth_path = depth_dir / f"{DEPTH_PREFIX}{stem}.mat"
            if not depth_path.is_file():
                raise InputError(depth_path, f"no depth for {image_path.name}")
            self.pairs.append((stem, image_path, depth_path))
        if not self.pairs:
            raise InputError(image_dir, f"no {IMAGE_PREFIX}*.jpg images")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        stem, image_path, depth_path = self.pairs[index]
        rgb = _read_rgb(image_path, self.allow_truncated)
        depth = read_make3d_depth(depth_path)
        if self.size is not None:
            rgb = resize_rgb(rgb, self.size)
        if self.depth_resolution == "image":
            depth = resize_nearest(depth, rgb.shape[:2])
        valid = np.isfinite(depth) & (depth > 0)
        return make_sample(rgb, depth, valid, unknown_intrinsics(rgb.shape[:2]), stem)
