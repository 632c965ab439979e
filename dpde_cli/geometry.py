"""Camera geometry (intrinsics, back-projection, depth edges) and finite differences.

No open3d here (see ``dpde_cli.pointcloud``).

Gradient convention used everywhere in dpde (network targets, fusion, losses):
forward differences in metres per pixel,

    grad_x[..., y, x] = d[..., y, x + 1] - d[..., y, x]   (last column is 0)
    grad_y[..., y, x] = d[..., y + 1, x] - d[..., y, x]   (last row is 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dpde_cli.errors import InputError

ArrayT = TypeVar("ArrayT")


def spatial_gradients(depth: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Forward-difference gradients of a depth map, zero on the last column / row.

    Args:
        depth: numpy array or torch tensor of shape (..., H, W), metres.

    Returns:
        (grad_x, grad_y), each of the same shape and type as ``depth``.

    Example:
        >>> gx, gy = spatial_gradients(np.arange(6.0).reshape(2, 3))
    """
    if isinstance(depth, np.ndarray):
        gx = np.zeros_like(depth)
        gy = np.zeros_like(depth)
    else:  # torch tensor; imported lazily so numpy-only callers stay light
        gx = depth.new_zeros(depth.shape)
        gy = depth.new_zeros(depth.shape)
    gx[..., :, :-1] = depth[..., :, 1:] - depth[..., :, :-1]
    gy[..., :-1, :] = depth[..., 1:, :] - depth[..., :-1, :]
    return gx, gy


def valid_gradient_masks(valid: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Masks of the gradients whose two pixels are both valid (same convention as above).

    Args:
        valid: boolean array or tensor (..., H, W).

    Returns:
        (valid_x, valid_y) boolean, same shape; False on the last column / row.
    """
    if isinstance(valid, np.ndarray):
        vx = np.zeros_like(valid, dtype=bool)
        vy = np.zeros_like(valid, dtype=bool)
    else:
        vx = valid.new_zeros(valid.shape, dtype=valid.dtype).bool()
        vy = valid.new_zeros(valid.shape, dtype=valid.dtype).bool()
    vx[..., :, :-1] = valid[..., :, 1:] & valid[..., :, :-1]
    vy[..., :-1, :] = valid[..., 1:, :] & valid[..., :-1, :]
    return vx, vy


# ------------------------------------------------------------------------------ intrinsics
#
# Pixel convention (the OpenCV / NYUv2 / TUM calibration convention): the centre of the pixel
# in column u, row v lies at image coordinates (u, v); integer coordinates are pixel centres,
# and the image covers [-0.5, W - 0.5] x [-0.5, H - 0.5]. So the exact image centre is
# ((W - 1) / 2, (H - 1) / 2). In continuous coordinates whose pixel centres sit at
# integer + 0.5 (the image spans [0, W]), a resize by sx = W' / W maps x_c to sx * x_c, so
#
#     fx' = fx * sx        cx' = (cx + 0.5) * sx - 0.5        (and the same for y)
#
# which is how `Intrinsics.scaled` rescales: exact for any resize that maps the image's
# edges onto the new image's edges (PIL, OpenCV INTER_LINEAR/AREA, torch `align_corners=False`,
# the resize `Predictor` uses).

NYU_KINECT = (518.8579, 519.46961, 325.58245, 253.73617, 640, 480)


def rescale_pinhole(
    values: tuple[float, float, float, float], scale: tuple[float, float]
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) for an image resized by (sx, sy), pixel centres at integers.

    The one place of the rule above; NaN focal lengths (uncalibrated sets) stay NaN.
    """
    fx, fy, cx, cy = values
    sx, sy = scale
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


"""(fx, fy, cx, cy, width, height) of the NYUv2 Kinect colour camera (the NYU toolbox values)."""

_ASPECT_TOLERANCE = 0.01  # relative difference of aspect ratios still taken as "the same"


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera without skew or distortion, for an image of a given size.

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels; the centre of the top-left pixel is (0, 0)
            (see the pixel convention above).
        width, height: size in pixels of the image these values refer to.

    Example:
        >>> Intrinsics.nyu_kinect().scaled(320, 240).fx  # 259.43 for the half-size image
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"intrinsics must be finite numbers, got {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def nyu_kinect(cls) -> Intrinsics:
        """The NYUv2 Kinect colour camera: 640x480, fx 518.86, fy 519.47, cx 325.58, cy 253.74."""
        return cls(*NYU_KINECT)

    @classmethod
    def from_fov(
        cls, fov_degrees: float, width: int, height: int, vertical: bool = False
    ) -> Intrinsics:
        """Square pixels, principal point at the image centre, from a field of view.

        Args:
            fov_degrees: the angle between the outer edges of the image, in (0, 180) degrees;
                across the width unless ``vertical``.
            width, height: image size in pixels.

        Example:
            >>> Intrinsics.from_fov(90.0, 640, 480).fx  # 320.0: half the width
        """
        if not 0.0 < fov_degrees < 180.0:
            raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_degrees}")
        side = height if vertical else width
        focal = 0.5 * side / math.tan(math.radians(fov_degrees) / 2.0)
        return cls(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    @classmethod
    def from_matrix(cls, matrix: Any, width: int, height: int) -> Intrinsics:
        """From a 3x3 camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew)."""
        k = np.asarray(matrix, dtype=np.float64)
        if k.shape != (3, 3):
            raise ValueError(f"a camera matrix is 3x3, got shape {k.shape}")
        scale = max(abs(k[0, 0]), abs(k[1, 1]), 1.0)
        if abs(k[0, 1]) > 1e-6 * scale or abs(k[1, 0]) > 1e-6 * scale:
            raise ValueError("camera matrices with skew are not supported (K[0,1] must be 0)")
        if not np.allclose(k[2], (0.0, 0.0, 1.0)):
            raise ValueError(f"the last row of a camera matrix must be 0 0 1, got {k[2].tolist()}")
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), width, height)

    def as_matrix(self) -> np.ndarray:
        """The (3, 3) float64 camera matrix K, mapping camera-frame points to pixels."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera for the image resized to (width, height) (the convention above).

        Example:
            >>> Intrinsics(500, 500, 319.5, 239.5, 640, 480).scaled(320, 240).cx  # 159.5
        """
        if (width, height) == (self.width, self.height):
            return self
        scale = (width / self.width, height / self.height)
        return Intrinsics(
            *rescale_pinhole((self.fx, self.fy, self.cx, self.cy), scale), width, height
        )

    def same_aspect(self, width: int, height: int) -> bool:
        """Whether an image of (width, height) has this image's aspect ratio (within 1%)."""
        ratio = (width / height) / (self.width / self.height)
        return abs(ratio - 1.0) <= _ASPECT_TOLERANCE

    def fov_degrees(self) -> tuple[float, float]:
        """(horizontal, vertical) field of view in degrees, edge to edge."""
        return (
            math.degrees(2.0 * math.atan(0.5 * self.width / self.fx)),
            math.degrees(2.0 * math.atan(0.5 * self.height / self.fy)),
        )

    def to_dict(self) -> dict[str, float | int]:
        """JSON-friendly values: fx, fy, cx, cy (pixels), width, height."""
        return {
            "fx": round(self.fx, 6),
            "fy": round(self.fy, 6),
            "cx": round(self.cx, 6),
            "cy": round(self.cy, 6),
            "width": self.width,
            "height": self.height,
        }


def backproject(depth: ArrayT, intrinsics: Intrinsics) -> ArrayT:
    """3D points of every pixel of a depth map, in the camera frame (OpenCV convention).

    The camera frame has x to the right, y down and z forward (along the optical axis),
    in metres; pixel (u, v) with depth z goes to ((u - cx) z / fx, (v - cy) z / fy, z).
    Depth is z-depth (distance along the optical axis, as Kinect, NYUv2 and dpde give it),
    not the distance along the ray. Nothing is masked: pixels with depth 0 land on the origin,
    NaN depth gives NaN points.

    Args:
        depth: numpy array or torch tensor (..., H, W), metres. Integer arrays are taken as
            metres too and converted to float64.
        intrinsics: the camera; rescaled to (W, H) first when it refers to another image size
            (see ``Intrinsics.scaled``).

    Returns:
        (..., H, W, 3) points (x, y, z) in metres, same type, dtype and device as ``depth``.

    Example:
        >>> points = backproject(np.full((480, 640), 2.0), Intrinsics.nyu_kinect())
        >>> points[253, 325]  # about (-0.002, -0.001, 2.0): near the optical axis
    """
    height, width = depth.shape[-2:]
    k = intrinsics.scaled(width, height)
    if isinstance(depth, np.ndarray):
        if not np.issubdtype(depth.dtype, np.floating):
            depth = depth.astype(np.float64)
        u = (np.arange(width, dtype=depth.dtype) - k.cx) / k.fx
        v = (np.arange(height, dtype=depth.dtype) - k.cy) / k.fy
        return np.stack([u * depth, v[:, None] * depth, depth], axis=-1)
    import torch

    if not depth.is_floating_point():
        depth = depth.double()
    u = (torch.arange(width, dtype=depth.dtype, device=depth.device) - k.cx) / k.fx
    v = (torch.arange(height, dtype=depth.dtype, device=depth.device) - k.cy) / k.fy
    return torch.stack([u * depth, v[:, None] * depth, depth], dim=-1)


def depth_discontinuities(
    depth: np.ndarray, threshold: float, neighbours: int = 8, valid: np.ndarray | None = None
) -> np.ndarray:
    """Pixels at a depth jump: the ones that flying pixels and smeared edges are made of.

    The relative jump between two pixels p and q is |d_p - d_q| / min(d_p, d_q). A pixel is
    marked when its jump to any valid neighbour exceeds ``threshold``; both sides of a jump
    are marked, and every pixel of a smeared ramp between a near and a far surface. Slanted
    surfaces stay unmarked unless seen almost edge-on: a plane at angle a to the viewing ray
    changes depth by about tan(a) / f per pixel, so 0.05 keeps planes up to ~87 degrees at
    f = 500 px.

    Args:
        depth: (H, W) metres; <= 0 or non-finite is no depth.
        threshold: the relative jump, e.g. 0.05 for 5%.
        neighbours: 4 (left, right, up, down) or 8 (also the diagonals).
        valid: (H, W) bool of the pixels to consider (default: finite depth > 0); jumps to
            pixels outside it do not count.

    Returns:
        (H, W) bool, True at a discontinuity (never True outside ``valid``).
    """
    if neighbours not in (4, 8):
        raise ValueError(f"neighbours must be 4 or 8, got {neighbours}")
    depth = np.asarray(depth, dtype=np.float64)
    if valid is None:
        valid = np.isfinite(depth) & (depth > 0)
    safe = np.where(valid, depth, 1.0)
    edges = np.zeros(depth.shape, dtype=bool)
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if neighbours == 8 else [])
    height, width = depth.shape
    for dy, dx in offsets:
        # pairs (p, q) with q = p + (dy, dx); mark both ends of a jump
        p = (slice(0, height - dy), slice(max(0, -dx), width - max(0, dx)))
        q = (slice(dy, height), slice(max(0, dx), width - max(0, -dx)))
        jump = np.abs(safe[p] - safe[q]) > threshold * np.minimum(safe[p], safe[q])
        jump &= valid[p] & valid[q]
        edges[p] |= jump
        edges[q] |= jump
    return edges


# ------------------------------------------------------------------------------ where from

INTRINSICS_SOURCES = ("options", "file", "exif-35mm", "exif-focal-plane", "fov", "default")
"""Where ``resolve_intrinsics`` takes the intrinsics from, highest precedence first."""

_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_X = 0xA20E
_FOCAL_PLANE_Y = 0xA20F
_FOCAL_PLANE_UNIT = 0xA210
_PIXEL_X = 0xA002
_PIXEL_Y = 0xA003
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # EXIF ResolutionUnit: inch, cm, mm, um


def resolve_intrinsics(
    width: int,
    height: int,
    *,
    fx: float | None = None,
    fy: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
    file: str | Path | None = None,
    image: str | Path | None = None,
    fov: float | None = None,
) -> tuple[Intrinsics, str]:
    """The camera of an image, from the best source there is.

    Precedence, highest first:

    1. ``fx`` / ``fy`` (one alone sets both: square pixels), with ``cx`` / ``cy`` or else
       the principal point of ``file`` or else the image centre;
    2. ``file``, an intrinsics file (see ``read_intrinsics_file``), rescaled to the image
       when it names the size it refers to;
    3. the EXIF of ``image`` (see ``exif_intrinsics``);
    4. ``fov``, the horizontal field of view in degrees;
    5. the NYUv2 Kinect camera (``Intrinsics.nyu_kinect``) scaled to the image: the camera
       dpde's indoor models were trained on, a guess for anything else (source "default").

    ``cx`` / ``cy`` without a focal length override the principal point of sources 2-5
    (the source then reads e.g. "exif-35mm+options").

    Args:
        width, height: the image in pixels, as displayed (EXIF orientation applied).
        fx, fy, cx, cy: pixels of that image; None where not given.
        file: an intrinsics file, or None.
        image: the image file whose EXIF to read, or None to skip EXIF.
        fov: horizontal field of view in degrees, or None.

    Returns:
        (intrinsics for (width, height), source), the source one of INTRINSICS_SOURCES,
        possibly with "+options".

    Raises:
        InputError: an unreadable intrinsics file, or one for another aspect ratio.
        ValueError: values that make no camera (a focal length <= 0, a fov outside (0, 180)).
    """
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    from_file = _fit_file(file, width, height) if file is not None else None
    if fx is not None or fy is not None:
        focal_x = fx if fx is not None else fy
        focal_y = fy if fy is not None else fx
        base = (from_file.cx, from_file.cy) if from_file is not None else centre
        principal = (cx if cx is not None else base[0], cy if cy is not None else base[1])
        return Intrinsics(focal_x, focal_y, *principal, width, height), "options"

    found = None
    if from_file is not None:
        found = from_file, "file"
    if found is None and image is not None:
        found = exif_intrinsics(image, width, height)
    if found is None and fov is not None:
        found = Intrinsics.from_fov(fov, width, height), "fov"
    if found is None:
        found = default_intrinsics(width, height), "default"
    intrinsics, source = found
    if cx is not None or cy is not None:
        intrinsics = replace(
            intrinsics,
            cx=cx if cx is not None else intrinsics.cx,
            cy=cy if cy is not None else intrinsics.cy,
        )
        source += "+options"
    return intrinsics, source


def default_intrinsics(width: int, height: int) -> Intrinsics:
    """The NYUv2 Kinect camera for an image of (width, height).

    Of the same aspect ratio (4:3): exactly rescaled. Otherwise the Kinect's field of view
    across the image's long side (a portrait image gets the Kinect turned by 90 degrees),
    principal point at the centre.
    """
    kinect = Intrinsics.nyu_kinect()
    if kinect.same_aspect(width, height):
        return kinect.scaled(width, height)
    scale = max(width, height) / kinect.width
    fx, fy = (kinect.fx, kinect.fy) if width >= height else (kinect.fy, kinect.fx)
    return Intrinsics(
        fx * scale,
        fy * scale,
        (width - 1) / 2.0,
        (height - 1) / 2.0,
        width,
        height,
    )


def exif_intrinsics(path: str | Path, width: int, height: int) -> tuple[Intrinsics, str] | None:
    """Intrinsics from a photo's EXIF, or None when it has no usable focal length.

    Two ways, the first that works:

    - ``FocalLengthIn35mmFilm`` (0xA405), source "exif-35mm": the long side of the image
      is taken as the 36 mm side of a 24x36 mm frame, so fx = fy = f35 / 36 * max(W, H).
      (Makers that define the equivalence by the diagonal, 43.27 mm, give a focal length
      about 4% different for a 4:3 sensor: the 35 mm tag is an approximation either way.)
    - ``FocalLength`` (0x920A) in mm times ``FocalPlaneXResolution`` / ``YResolution``
      (0xA20E / 0xA20F, pixels per ``FocalPlaneResolutionUnit``: inch by default, cm, mm),
      source "exif-focal-plane"; the resolution refers to the sensor image of
      ``PixelXDimension`` x ``PixelYDimension`` (0xA002 / 0xA003) when given, and the
      values are rescaled to the image.

    The principal point is the image centre. The values refer to the image as displayed
    (EXIF orientation applied: a 90-degree rotation swaps the focal-plane axes). Values that
    give a field of view across the long side outside 5-170 degrees are taken as broken
    tags and ignored.

    Args:
        path: the image file (any format PIL reads EXIF from: JPEG, PNG, TIFF, WebP).
        width, height: the displayed image size in pixels.
    """
    from dpde_cli.io import open_image

    try:
        with open_image(Path(path)) as image:
            exif = image.getexif()
            stored = image.size
            sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # no EXIF is a normal case, whatever PIL raises for it
        return None

    def tag(number: int) -> float | None:
        value = sub.get(number, exif.get(number))
        try:
            value = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return value if math.isfinite(value) and value > 0 else None

    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    f35 = tag(_FOCAL_35MM)
    if f35 is not None:
        focal = f35 / 36.0 * max(width, height)
        found = Intrinsics(focal, focal, *centre, width, height), "exif-35mm"
        return found if _plausible(found[0]) else None
    focal_mm, x_res = tag(_FOCAL_LENGTH), tag(_FOCAL_PLANE_X)
    unit = _UNIT_MM.get(int(tag(_FOCAL_PLANE_UNIT) or 2))
    if focal_mm is None or x_res is None or unit is None:
        return None
    y_res = tag(_FOCAL_PLANE_Y) or x_res
    fx, fy = focal_mm * x_res / unit, focal_mm * y_res / unit
    ref_w, ref_h = int(tag(_PIXEL_X) or stored[0]), int(tag(_PIXEL_Y) or stored[1])
    if exif.get(_ORIENTATION, 1) in (5, 6, 7, 8):  # transposed for display
        fx, fy, ref_w, ref_h = fy, fx, ref_h, ref_w
    reference = Intrinsics(fx, fy, (ref_w - 1) / 2.0, (ref_h - 1) / 2.0, ref_w, ref_h)
    if reference.same_aspect(width, height):  # resized since capture
        found = reference.scaled(width, height)
    else:  # cropped since capture: same pixels, unknown centre
        found = Intrinsics(fx, fy, *centre, width, height)
    return (found, "exif-focal-plane") if _plausible(found) else None


def _plausible(camera: Intrinsics) -> bool:
    """A field of view across the long side within 5-170 degrees (else a broken EXIF tag)."""
    hfov, vfov = camera.fov_degrees()
    across = hfov if camera.width >= camera.height else vfov
    return 5.0 <= across <= 170.0


def read_intrinsics_file(path: str | Path) -> tuple[Intrinsics | None, tuple[float, ...]]:
    """Read an intrinsics file.

    Accepted contents:

    - JSON ``{"fx": .., "fy": .., "cx": .., "cy": ..}``, optionally with ``"width"`` and
      ``"height"``: the image size these values refer to (dpde's ``*.intrinsics.json``);
    - JSON ``{"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]}`` (also "camera_matrix"), optional
      width / height; or Open3D's ``PinholeCameraIntrinsic`` JSON (``"intrinsic_matrix"``,
      9 numbers, column-major, with width and height);
    - a JSON list ``[fx, fy, cx, cy]`` or a 3x3 nested list;
    - text: a 3x3 matrix, whitespace or comma separated (``numpy.savetxt`` output), or the
      four numbers fx fy cx cy.

    Returns:
        (intrinsics, values): the Intrinsics when the file names its image size, else None
        and the four values (fx, fy, cx, cy) in pixels, to be taken for the image as it is.

    Raises:
        InputError: missing or unreadable file, or values that make no camera.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such intrinsics file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read intrinsics ({exc})") from exc
    try:
        values, size = _parse_intrinsics(text)
        if size is not None:
            return Intrinsics(*values, int(size[0]), int(size[1])), values
        Intrinsics(*values, 1, 1)  # validates the numbers
        return None, values
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"not an intrinsics file ({exc})") from None


def _parse_intrinsics(text: str) -> tuple[tuple[float, ...], tuple[int, int] | None]:
    """(fx, fy, cx, cy) and the (width, height) or None, from a file's text."""
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if data is None:  # plain text: a 3x3 matrix or four numbers
        try:
            numbers = np.loadtxt(text.splitlines(), delimiter=None if "," not in text else ",")
        except ValueError as exc:
            raise ValueError("neither JSON nor a 3x3 matrix of numbers") from exc
        data = numbers.tolist()
    size = None
    if isinstance(data, dict):
        if ("width" in data) != ("height" in data):
            raise ValueError("give both width and height of the image, or neither")
        if "width" in data:
            size = (int(data["width"]), int(data["height"]))
        if "intrinsic_matrix" in data:  # Open3D PinholeCameraIntrinsic, column-major
            data = np.asarray(data["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T
        elif "K" in data or "camera_matrix" in data:
            data = data.get("K", data.get("camera_matrix"))
        else:
            missing = [key for key in ("fx", "fy", "cx", "cy") if key not in data]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
            return tuple(float(data[key]) for key in ("fx", "fy", "cx", "cy")), size
    array = np.asarray(data, dtype=np.float64)
    if array.shape == (4,):
        return tuple(float(v) for v in array), size
    if array.shape == (3, 3):
        k = Intrinsics.from_matrix(array, 1, 1)
        return (k.fx, k.fy, k.cx, k.cy), size
    raise ValueError(f"expected fx, fy, cx, cy or a 3x3 matrix, got shape {array.shape}")


def _fit_file(path: str | Path, width: int, height: int) -> Intrinsics:
    """An intrinsics file's camera for an image of (width, height)."""
    intrinsics, values = read_intrinsics_file(path)
    if intrinsics is None:
        return Intrinsics(*values, width, height)
    if not intrinsics.same_aspect(width, height):
        raise InputError(
            path,
            f"intrinsics for a {intrinsics.width}x{intrinsics.height} image do not fit a "
            f"{width}x{height} image (another aspect ratio: cropped?)",
        )
    return intrinsics.scaled(width, height)
