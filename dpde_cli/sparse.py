"""Sparse depth measurements: reading sparse maps, parsing anchors, drawing samples.

A sparse map is an ``(H, W)`` float32 array on a depth map's grid, metres where a pixel
holds a measurement and 0 elsewhere (what :func:`dpde_cli.completion.complete_depth`
takes). Measurements come from a file of any resolution with the photo's aspect ratio
(:func:`read_sparse_depth`), from ``X,Y=METRES`` anchors in the photo's pixel coordinates
(:func:`parse_anchor`, :func:`anchor_map`), or from ground truth (:func:`sample_sparse`).

Pixel convention (that of :mod:`dpde_cli.data`): pixel ``(x, y)`` has its centre at the
integer coordinates ``(x, y)``, so a map of width ``w`` puts its column ``u`` at
``(u + 0.5) * W / w - 0.5`` on a grid of width ``W``, rounded to the nearest pixel. Where
several measurements land on one pixel, the pixel takes their lower median (a measured
value, never a blend of a foreground and a background depth).

Example:
    >>> sparse = read_sparse_depth("lidar.png", photo_size=(480, 640), shape=(480, 640))
    >>> sparse = anchor_map([parse_anchor("320,240=2.5")], (480, 640), (480, 640), sparse)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dpde_cli.errors import InputError, UsageError

if TYPE_CHECKING:
    from dpde_cli.inputs import InputItem

__all__ = [
    "ALIGNMENTS",
    "SPARSE_EXTENSIONS",
    "Anchor",
    "Measurements",
    "anchor_map",
    "parse_anchor",
    "rasterize_points",
    "read_sparse_depth",
    "sample_sparse",
    "sparse_points",
]

_ASPECT_TOLERANCE = 0.01
"""Relative difference of aspect ratios still taken as the same view (as `dpde fuse`)."""
_MILLIMETRE_HINT = 500.0
"""A median measurement past this many metres is almost surely in other units."""
ALIGNMENTS: tuple[str, ...] = ("scale", "scale-shift")
"""How a prediction is fitted to measurements (``completion.fit_alignment``)."""
SPARSE_EXTENSIONS = (".png", ".npy", ".pfm", ".tiff", ".tif")
"""What a folder of sparse maps (``--sparse-depth DIR``) may hold, looked for in this order."""


@dataclass(frozen=True)
class Anchor:
    """One known distance at a pixel of the photo.

    Attributes:
        x: column in the full photo's pixels (0 = the left pixel's centre).
        y: row in the full photo's pixels (0 = the top pixel's centre).
        depth: metres, > 0.
    """

    x: float
    y: float
    depth: float


def parse_anchor(text: str, option: str = "--anchor") -> Anchor:
    """Parse ``X,Y=METRES`` (pixel column and row of the full photo, depth in metres).

    Args:
        text: e.g. ``"320,240=2.5"``.
        option: the option's name, for messages.

    Raises:
        UsageError: not of that form, a coordinate that is not a finite number, or a
            depth that is not a positive finite number.

    Example:
        >>> parse_anchor("320,240=2.5")
        Anchor(x=320.0, y=240.0, depth=2.5)
    """
    where, sep, value = text.partition("=")
    parts = where.split(",")
    if not sep or len(parts) != 2:
        raise UsageError(f"{option} {text!r}: expected X,Y=METRES (e.g. 320,240=2.5)")
    try:
        x, y, depth = float(parts[0]), float(parts[1]), float(value)
    except ValueError:
        raise UsageError(f"{option} {text!r}: X, Y and METRES must be numbers") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise UsageError(f"{option} {text!r}: X and Y must be finite pixel coordinates")
    if not (math.isfinite(depth) and depth > 0):
        raise UsageError(f"{option} {text!r}: the distance must be a positive number of metres")
    return Anchor(x, y, depth)


def anchor_map(
    anchors: Sequence[Anchor],
    photo_size: tuple[int, int],
    shape: tuple[int, int],
    sparse: np.ndarray | None = None,
    option: str = "--anchor",
) -> np.ndarray:
    """Put anchors on a depth grid, over an existing sparse map if one is given.

    Args:
        anchors: from :func:`parse_anchor`, in the full photo's pixel coordinates.
        photo_size: (H, W) of the photo the coordinates refer to (EXIF orientation
            applied, as :func:`dpde_cli.io.read_image` returns it).
        shape: (h, w) of the depth grid (the photo's aspect ratio).
        sparse: optional (h, w) sparse map to add to; an anchor replaces a measurement
            at its pixel. Not modified.
        option: the option's name, for messages.

    Returns:
        (h, w) float32 metres, 0 where there is no measurement.

    Raises:
        UsageError: an anchor outside the photo.
    """
    height, width = photo_size
    for a in anchors:
        if not (0 <= a.x <= width - 1 and 0 <= a.y <= height - 1):
            raise UsageError(
                f"{option} {a.x:g},{a.y:g}={a.depth:g}: the pixel lies outside the "
                f"{width}x{height} photo (X in 0..{width - 1}, Y in 0..{height - 1})"
            )
    out = np.zeros(shape, np.float32) if sparse is None else np.array(sparse, np.float32)
    if anchors:
        xs = np.array([a.x for a in anchors], np.float64)
        ys = np.array([a.y for a in anchors], np.float64)
        depth = np.array([a.depth for a in anchors], np.float64)
        placed = rasterize_points(ys, xs, depth, photo_size, shape)
        out[placed > 0] = placed[placed > 0]
    return out


def rasterize_points(
    ys: np.ndarray,
    xs: np.ndarray,
    depth: np.ndarray,
    source_size: tuple[int, int],
    shape: tuple[int, int],
) -> np.ndarray:
    """Measurements at pixel coordinates of a ``source_size`` grid, put on a ``shape`` grid.

    Args:
        ys: (N,) rows, pixel centres at integers, in the source grid.
        xs: (N,) columns.
        depth: (N,) metres, > 0.
        source_size: (H, W) the coordinates refer to.
        shape: (h, w) of the grid to fill.

    Returns:
        (h, w) float32, the lower median of the measurements that land on each pixel,
        0 where none does.
    """
    h, w = shape
    rows = np.rint((np.asarray(ys) + 0.5) * (h / source_size[0]) - 0.5).astype(np.int64)
    cols = np.rint((np.asarray(xs) + 0.5) * (w / source_size[1]) - 0.5).astype(np.int64)
    flat = np.clip(rows, 0, h - 1) * w + np.clip(cols, 0, w - 1)
    out = np.zeros(h * w, np.float32)
    if flat.size:
        depth = np.asarray(depth, np.float32)
        order = np.lexsort((depth, flat))  # by pixel, then by depth
        flat, depth = flat[order], depth[order]
        starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
        counts = np.diff(np.r_[starts, flat.size])
        pick = starts + (counts - 1) // 2
        out[flat[pick]] = depth[pick]
    return out.reshape(shape)


def read_sparse_depth(
    path: str | Path,
    photo_size: tuple[int, int],
    shape: tuple[int, int] | None = None,
    depth_scale: float = 1000.0,
) -> np.ndarray:
    """Read a sparse depth map (png16, npy, pfm, tiff) and put it on a depth grid.

    0 or NaN marks a pixel without a measurement. The map may have any resolution with the
    photo's aspect ratio; its pixels are mapped onto the grid by their centres.

    Args:
        path: the file. PNG: 16-bit integers, ``depth_scale`` units per metre.
        photo_size: (H, W) of the photo the map belongs to.
        shape: (h, w) of the depth grid (default: the photo's size).
        depth_scale: integer PNG units per metre (1000 = millimetres).

    Returns:
        (h, w) float32 metres, 0 where there is no measurement.

    Raises:
        InputError: unreadable, 8-bit or colour, another aspect ratio than the photo,
            negative or infinite values, no measurement at all, or values that look like
            millimetres.
    """
    from dpde_cli.io import read_depth

    path = Path(path)
    values = read_depth(path, depth_scale, what="sparse depth")
    mh, mw = values.shape
    ph, pw = photo_size
    if abs((mw / mh) / (pw / ph) - 1.0) > _ASPECT_TOLERANCE:
        raise InputError(
            path,
            f"sparse depth map {mw}x{mh} does not have the aspect ratio of the {pw}x{ph} photo",
        )
    measured = np.isfinite(values) & (values != 0)
    bad = int((np.isinf(values) | (values < 0)).sum())
    if bad:
        raise InputError(
            path, f"{bad} negative or infinite values; 0 or NaN mark pixels without a measurement"
        )
    if not measured.any():
        raise InputError(path, "no measurement (every value is 0 or NaN)")
    rows, cols = np.nonzero(measured)
    depth = values[rows, cols]
    if float(np.median(depth)) > _MILLIMETRE_HINT:
        raise InputError(
            path,
            f"median depth {float(np.median(depth)):.0f} m: the values look like millimetres "
            "(PNG depth uses the depth scale's units per metre; .npy, .pfm, .tiff hold metres)",
        )
    return rasterize_points(rows, cols, depth, (mh, mw), shape or tuple(photo_size))


def sparse_points(
    sparse: np.ndarray, confidence: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The measurements of a sparse map: (rows, cols, depth, weight).

    A pixel is a measurement where its value is finite and > 0 and its confidence (when
    given) is > 0. The weight is the confidence, or 1.
    """
    sparse = np.asarray(sparse)
    keep = np.isfinite(sparse) & (sparse > 0)
    if confidence is not None:
        keep &= np.asarray(confidence) > 0
    rows, cols = np.nonzero(keep)
    weight = np.ones(rows.size) if confidence is None else np.asarray(confidence, np.float64)[keep]
    return rows, cols, sparse[keep].astype(np.float64), weight


def sample_sparse(
    gt_depth: np.ndarray, valid: np.ndarray | None, n: int, seed: int = 0
) -> np.ndarray:
    """Draw ``n`` ground-truth pixels uniformly from the valid ones (Ma & Karaman 2018).

    The sparse-to-dense protocol: the same ``seed`` and inputs draw the same pixels.

    Args:
        gt_depth: (H, W) ground-truth depth, metres.
        valid: (H, W) bool, pixels that may be drawn (default: finite and > 0); pixels
            whose depth is not finite and > 0 are never drawn.
        n: how many pixels (all the valid ones where there are fewer).
        seed: random seed.

    Returns:
        (H, W) float32 sparse map: the ground truth at the drawn pixels, 0 elsewhere.

    Raises:
        UsageError: ``n`` < 1.
    """
    if n < 1:
        raise UsageError(f"the number of sparse samples must be >= 1, got {n}")
    gt = np.asarray(gt_depth, np.float32)
    ok = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    candidates = np.flatnonzero(ok)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(candidates, size=min(n, candidates.size), replace=False)
    out = np.zeros(gt.shape, np.float32)
    out.flat[chosen] = gt.flat[chosen]
    return out


@dataclass(frozen=True)
class Measurements:
    """Known distances for the photos of a batch (``predict`` / ``pointcloud``
    ``--sparse-depth``, ``--anchor``, ``--align``), turned into metric depth by
    :func:`dpde_cli.completion.complete_from_measurements`.

    Attributes:
        sparse: a sparse depth map for one photo, or a folder of them named as the photos
            (each photo's relative name with one of ``SPARSE_EXTENSIONS``:
            photos/a/b.jpg -> DIR/a/b.png); a photo without one fails alone. None: none.
        anchors: ``"X,Y=METRES"`` in the full photo's pixels (one photo only).
        depth_scale: integer PNG units per metre of the sparse maps.
        align: "scale" or "scale-shift".
    """

    sparse: Path | None = None
    anchors: tuple[str, ...] = ()
    depth_scale: float = 1000.0
    align: str = "scale"

    @property
    def given(self) -> bool:
        """Whether there is anything to complete from."""
        return self.sparse is not None or bool(self.anchors)

    def check(self, items: Sequence[InputItem]) -> None:
        """Refuse, before any model loads, options that cannot go with these photos.

        Raises:
            UsageError: an unknown alignment, a malformed anchor or one outside the photo,
                anchors for several photos, a missing --sparse-depth, or one sparse file
                for several photos.
            InputError: for one photo, a sparse map that does not fit it (naming the map).
        """
        if self.align not in ALIGNMENTS:
            raise UsageError(f"--align {self.align}: use {' or '.join(ALIGNMENTS)}")
        if not self.depth_scale > 0:
            raise UsageError(f"--depth-scale {self.depth_scale:g}: must be > 0")
        anchors = [parse_anchor(text) for text in self.anchors]
        if anchors and len(items) != 1:
            raise UsageError(
                f"--anchor gives distances in one photo's pixels, but there are {len(items)} "
                "photos; give one photo, or --sparse-depth DIR with a map per photo"
            )
        if self.sparse is not None and not self.sparse.exists():
            raise UsageError(f"--sparse-depth {self.sparse}: no such file or directory")
        if self.sparse is not None and not self.sparse.is_dir() and len(items) > 1:
            raise UsageError(
                f"--sparse-depth {self.sparse} is one sparse map but there are {len(items)} "
                "photos; give a directory of maps named as the photos"
            )
        if len(items) == 1 and self.given:
            self._check_fit(anchors, items[0])

    def _check_fit(self, anchors: Sequence[Anchor], item: InputItem) -> None:
        """For one photo, before any model loads: anchors inside it (UsageError) and a
        sparse map that fits it (InputError, naming the map). A photo that cannot be read
        fails later, as an input."""
        from dpde_cli.errors import DpdeError
        from dpde_cli.io import read_image

        try:
            size = read_image(item.path).shape[:2]
        except DpdeError:
            return
        anchor_map(anchors, size, (1, 1))
        sparse = self.file_for(item)
        if sparse is not None:
            read_sparse_depth(sparse, size, (1, 1), self.depth_scale)

    def file_for(self, item: InputItem) -> Path | None:
        """The sparse map of a photo (None without --sparse-depth).

        Raises:
            InputError: a folder that holds none for it.
        """
        from dpde_cli.inputs import companion_file

        if self.sparse is None or not self.sparse.is_dir():
            return self.sparse
        return companion_file(item, self.sparse, SPARSE_EXTENSIONS, "sparse depth map")

    def sources(self, item: InputItem) -> tuple[Path, ...]:
        """The files a photo's completion reads (never to be written)."""
        try:
            found = self.file_for(item)
        except InputError:  # it fails when its turn comes
            return ()
        return () if found is None else (found,)

    def complete(
        self, item: InputItem, depth: np.ndarray, gradients: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A photo's prediction completed from its measurements: (depth, its JSON record).

        ``depth``: (H, W) metres at the photo's full (EXIF-turned) size; ``gradients``:
        (2, H, W) or None. The record holds the fitted scale (and shift), the points used
        and rejected, and the residuals at them.

        Raises:
            InputError: a sparse map that cannot be used, naming it; an alignment its
                points cannot support, naming the photo.
        """
        from dpde_cli.completion import complete_from_measurements

        sparse = self.file_for(item)
        try:
            result = complete_from_measurements(
                depth,
                gradients,
                tuple(np.shape(depth)),
                sparse_path=sparse,
                anchors=self.anchors,
                depth_scale=self.depth_scale,
                align=self.align,  # type: ignore[arg-type]
            )
        except UsageError as exc:  # e.g. a scale-shift these points cannot support
            raise InputError(item.path, str(exc)) from None
        record = {
            "sparse_depth": None if sparse is None else str(sparse),
            "anchors": len(self.anchors),
            **_rounded(result.summary()),
        }
        return result.depth, record


def _rounded(value: Any) -> Any:
    """Floats of a JSON record to 6 significant digits, through dicts."""
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, float):
        return float(f"{value:.6g}") + 0.0  # no -0.0
    return value
