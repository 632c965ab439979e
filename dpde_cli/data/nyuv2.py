"""NYU Depth v2: the labelled set with the official 795 / 654 split.

Two on-disk layouts are read:

1. The official labelled file ``nyu_depth_v2_labeled.mat`` (2.8 GB, MATLAB v7.3 = HDF5)
   with the official split ``splits.mat`` (MATLAB v5: ``trainNdxs`` 795 x 1 and
   ``testNdxs`` 654 x 1, 1-based indices into the 1449 frames). MATLAB writes arrays
   column-major and HDF5 row-major, so h5py sees every array with its axes reversed:
   ``images`` is (1449, 3, 640, 480) = (N, C, W, H) and ``depths`` / ``rawDepths`` are
   (1449, 640, 480) = (N, W, H). Frame i is therefore ``images[i].transpose(2, 1, 0)``
   -> (480, 640, 3) and ``depths[i].T`` -> (480, 640) (as BTS's
   extract_official_train_test_set_from_mat.py does with ``.T``). Ground truth is
   ``depths`` (the colourised / in-filled maps; ``gt="filled"``, the default) or
   ``rawDepths`` (``gt="raw"``, 0 where the Kinect had no reading), both in metres.
   Sample names are the 0-based frame index, ``"00045"``: the number BTS uses in
   ``rgb_00045.jpg``.

2. The extracted layout of BTS / AdaBins: a list file such as
   ``nyudepthv2_test_files_with_gt.txt`` with lines ``rgb_path depth_path focal``
   (paths relative to the data folder; a leading "/" is ignored; depth "None" = no
   ground truth), 16-bit PNG depth in millimetres. BTS's extraction script writes the
   labelled set's ``rawDepths`` into those PNGs, so this layout's ground truth is the
   raw depth. Sample names are the rgb path without its extension.

Intrinsics: the NYUv2 Kinect colour camera, fx 518.8579, fy 519.4696, cx 325.5824,
cy 253.7362 at 640x480, scaled with the image (the list layout uses its line's focal
for fx and fy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from dpde_cli.data._common import (
    Size,
    check_split,
    make_sample,
    parse_size,
    resize_nearest,
    resize_rgb,
    scale_intrinsics,
)
from dpde_cli.errors import InputError, UsageError
from dpde_cli.geometry import NYU_KINECT

LABELED_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"
LABELED_URL = "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
SPLITS_URL = "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat"
LIST_FILE = "nyudepthv2_{split}_files_with_gt.txt"
NATIVE_SIZE: Size = (480, 640)
KINECT_INTRINSICS = NYU_KINECT[:4]  # fx, fy, cx, cy at 640x480
"""[fx, fy, cx, cy] of the NYUv2 Kinect colour camera at 640x480."""
SPLITS = ("train", "test", "all")
_SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}
_GT_KEYS = {"filled": "depths", "raw": "rawDepths"}
_GT_NOTES = {
    ("mat", "filled"): "NYUv2 filled depth (the labelled .mat's in-painted 'depths')",
    ("mat", "raw"): "NYUv2 raw depth (the labelled .mat's 'rawDepths', holes invalid)",
    ("list", "raw"): "NYUv2 raw depth (the list layout's 16-bit PNGs, BTS's rawDepths)",
}


def load_official_split(path: str | Path, split: str) -> np.ndarray:
    """0-based frame indices of an official split from ``splits.mat``.

    Args:
        path: splits.mat (MATLAB v5, ``trainNdxs`` / ``testNdxs``, 1-based).
        split: "train" (795 frames) or "test" (654 frames).

    Returns:
        (N,) int64 sorted indices into the 1449 labelled frames.

    Raises:
        InputError: missing or unreadable file, or a missing key.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such file; download the official split from {SPLITS_URL}")
    key = _SPLIT_KEYS[split]
    try:
        content = scipy.io.loadmat(path, variable_names=[key])
    except Exception as exc:  # scipy raises several kinds on a bad file
        raise InputError(path, f"cannot read as a MATLAB file ({exc})") from exc
    if key not in content:
        raise InputError(path, f"no {key!r} array (is this NYUv2's splits.mat?)")
    return np.sort(np.asarray(content[key]).astype(np.int64).ravel() - 1)


@dataclass(frozen=True)
class ListEntry:
    """One line of a BTS list file: paths relative to the data folder, focal in pixels."""

    rgb: str
    depth: str | None
    focal: float


def read_nyu_list(path: str | Path) -> list[ListEntry]:
    """Parse a BTS / AdaBins list file (``rgb_path depth_path focal`` per line).

    Blank lines are skipped, a leading "/" on a path is dropped, and a depth of "None"
    means no ground truth.

    Raises:
        InputError: missing file or a malformed line (named by its number).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such list file")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise InputError(path, f"line {number}: expected 'rgb_path depth_path focal'")
        try:
            focal = float(fields[2])
        except ValueError:
            raise InputError(path, f"line {number}: focal {fields[2]!r} is not a number") from None
        depth = None if fields[1] == "None" else fields[1].lstrip("/")
        entries.append(ListEntry(rgb=fields[0].lstrip("/"), depth=depth, focal=focal))
    return entries


class NYUv2(Dataset):
    """NYU Depth v2 labelled frames (official split) as dpde samples.

    The HDF5 file is opened lazily, once per process (h5py handles do not survive a fork),
    so the dataset works in DataLoader workers.

    Args:
        root: folder holding ``nyu_depth_v2_labeled.mat`` and ``splits.mat``, or the .mat
            file itself, or a folder with an extracted layout and its list file.
        split: "test" (654), "train" (795) or "all" (1449, .mat only).
        gt: "filled" (``depths``) or "raw" (``rawDepths``); .mat only. Default "filled".
        size: optional (height, width) to resize to: image bilinear, depth nearest.
        splits_file: splits.mat if not beside the .mat.
        list_file: list file of the extracted layout (default
            ``root/nyudepthv2_{split}_files_with_gt.txt``).

    Attributes:
        gt: "filled" or "raw", the ground truth used (the list layout's PNGs are raw).
        ground_truth: the same in words, with its source, for evaluation reports.

    Raises:
        InputError: neither layout found (the message says where to get the .mat), a
            malformed file, or a file named by the list that is missing.

    Example:
        >>> ds = NYUv2("~/data/nyu", split="test")
        >>> sample = ds[0]; sample["depth"].shape
        torch.Size([1, 480, 640])
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        gt: Literal["filled", "raw"] | None = None,
        size: tuple[int, int] | None = None,
        splits_file: str | Path | None = None,
        list_file: str | Path | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.split = check_split(split, SPLITS, "nyuv2")
        self.size = parse_size(size)
        if gt is not None and gt not in _GT_KEYS:
            raise UsageError(f"nyuv2 gt must be 'filled' or 'raw', got {gt!r}")
        self._file = None
        self._pid: int | None = None
        mat = self._find_mat()
        if mat is not None and list_file is None:
            self.layout = "mat"
            self.mat_path = mat
            self.gt = gt or "filled"
            self._init_mat(splits_file)
        else:
            self.layout = "list"
            self.gt = "raw"  # BTS's extraction writes rawDepths into the PNGs
            self._init_list(list_file)
            if gt is not None:
                raise UsageError(
                    "gt= applies to the labelled .mat only; the depth PNGs of "
                    "an extracted layout are used as they are (raw depth)"
                )
        self.ground_truth = _GT_NOTES[(self.layout, self.gt)]

    # -------------------------------------------------------------- layout discovery

    def _find_mat(self) -> Path | None:
        if self.root.is_file() and self.root.suffix == ".mat":
            return self.root
        if (self.root / LABELED_FILE).is_file():
            return self.root / LABELED_FILE
        return None

    def _init_mat(self, splits_file: str | Path | None) -> None:
        import h5py

        try:
            with h5py.File(self.mat_path, "r") as handle:
                shapes = {
                    key: handle[key].shape for key in ("images", _GT_KEYS[self.gt]) if key in handle
                }
        except OSError as exc:
            raise InputError(self.mat_path, f"cannot open as HDF5 / MATLAB v7.3 ({exc})") from exc
        depth_key = _GT_KEYS[self.gt]
        if "images" not in shapes or depth_key not in shapes:
            raise InputError(
                self.mat_path,
                f"expected 'images' and {depth_key!r} arrays (is this nyu_depth_v2_labeled.mat?)",
            )
        n, channels, width, height = shapes["images"]
        if channels != 3 or shapes[depth_key] != (n, width, height):
            raise InputError(
                self.mat_path,
                f"unexpected shapes images {shapes['images']} and {depth_key} "
                f"{shapes[depth_key]} (expected (N, 3, W, H) and (N, W, H))",
            )
        self.native_size: Size = (height, width)
        if self.split == "all":
            self.indices = np.arange(n, dtype=np.int64)
        else:
            base = self.mat_path.parent
            splits = Path(splits_file) if splits_file is not None else base / SPLITS_FILE
            self.indices = load_official_split(splits, self.split)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            raise InputError(self.mat_path, f"split indices exceed the {n} frames in the file")

    def _init_list(self, list_file: str | Path | None) -> None:
        if list_file is None:
            candidate = self.root / LIST_FILE.format(split=self.split)
            if not candidate.is_file():
                raise InputError(
                    self.root,
                    f"no NYUv2 data: expected {LABELED_FILE} (download it from "
                    f"{LABELED_URL}) with {SPLITS_FILE} ({SPLITS_URL}), or an extracted "
                    f"layout with {candidate.name}",
                )
            list_file = candidate
        if self.split == "all":
            raise UsageError("split 'all' needs the labelled .mat; a list file is one split")
        self.list_path = Path(list_file)
        self.data_root = self.root if self.root.is_dir() else self.list_path.parent
        self.entries = read_nyu_list(self.list_path)
        for entry in self.entries:
            for rel in (entry.rgb, entry.depth):
                if rel is not None and not (self.data_root / rel).is_file():
                    raise InputError(
                        self.data_root / rel, f"no such file (listed in {self.list_path.name})"
                    )

    # -------------------------------------------------------------- dataset protocol

    def __len__(self) -> int:
        return len(self.indices) if self.layout == "mat" else len(self.entries)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None  # reopened in the new process
        state["_pid"] = None
        return state

    def _h5(self):  # returns h5py.File (imported lazily)
        """The HDF5 handle of this process, opened on first use."""
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file = h5py.File(self.mat_path, "r")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close this process's HDF5 handle (it reopens on the next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self.layout == "mat":
            frame = int(self.indices[index])
            handle = self._h5()
            rgb = np.asarray(handle["images"][frame]).transpose(2, 1, 0)  # (H, W, 3)
            depth = np.asarray(handle[_GT_KEYS[self.gt]][frame], dtype=np.float32).T
            rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
            intrinsics = scale_intrinsics(KINECT_INTRINSICS, NATIVE_SIZE, rgb.shape[:2])
            name = f"{frame:05d}"
        else:
            from dpde_cli.io import read_depth, read_image

            entry = self.entries[index]
            rgb = read_image(self.data_root / entry.rgb)
            if entry.depth is None:
                depth = np.zeros(rgb.shape[:2], dtype=np.float32)
            else:
                depth = read_depth(self.data_root / entry.depth, scale=1000.0)
            if depth.shape != rgb.shape[:2]:
                raise InputError(
                    self.data_root / (entry.depth or entry.rgb),
                    f"depth {depth.shape} and image {rgb.shape[:2]} sizes differ",
                )
            focal = (entry.focal, entry.focal, KINECT_INTRINSICS[2], KINECT_INTRINSICS[3])
            intrinsics = scale_intrinsics(focal, NATIVE_SIZE, rgb.shape[:2])
            name = entry.rgb.rsplit(".", 1)[0]
        if self.size is not None:
            intrinsics = scale_intrinsics(intrinsics, rgb.shape[:2], self.size)
            rgb = resize_rgb(rgb, self.size)
            depth = resize_nearest(depth, self.size)
        return make_sample(rgb, depth, depth > 0, intrinsics, name)
