"""Reading images and depth maps, and writing depth atomically in every supported format.

Depth formats, chosen by extension or by name:

    png16   .png        uint16 millimetres, 0 = no depth (the BTS / AdaBins / DPT convention)
    npy     .npy        float32 metres
    pfm     .pfm        float32 metres (Portable Float Map, little-endian, rows bottom-up)
    tiff    .tif/.tiff  float32 metres
    color   .png/.jpg   a colour-mapped preview over a fixed depth range (not for reading)
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dpde_cli.errors import InputError, UsageError
from dpde_cli.formats import HEIF_EXTENSIONS, depth_format
from dpde_cli.outputs import (  # noqa: F401  (re-exported: the writers of outputs.py)
    STREAMS,
    atomic_path,
    file_in_the_way,
    real_target,
    refuse_unwritable,
    shown_name,
    why_unwritable,
    written_in_place,
)

MAX_PNG16_METRES = 65.535
"""The farthest depth a 16-bit PNG in millimetres holds."""


# ------------------------------------------------------------------------------ images


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read any PIL-readable image (and HEIC/HEIF, as phones save photos) as 8-bit RGB with
    its EXIF orientation applied.

    RGBA and LA are composited on white, palette images converted, 16-bit and 32-bit
    grayscale scaled to 8 bits.

    Args:
        path: image file.
        max_pixels: refuse images with more pixels (default: PIL's decompression-bomb
            limit, about 89 MP).

    Returns:
        (H, W, 3) uint8 array.

    Raises:
        InputError: missing, empty, not an image, truncated, or too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _own_pixel_limit() as default:  # PIL's, which --max-pixels could not raise
                opened = open_image(path)
            limit = max_pixels or default
            with opened as image:
                if image.width * image.height > limit:
                    raise InputError(path, _too_large(image.width, image.height, limit))
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb8(image)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            path, f"refused as a decompression bomb ({exc}); see --max-pixels"
        ) from exc
    except UnidentifiedImageError:
        raise InputError(path, "not an image (PIL cannot identify it)") from None
    except MemoryError:
        raise InputError(path, "image too large for memory") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(path, f"cannot decode image ({exc})") from exc


def open_image(path: Path):
    """PIL's Image.open, with HEIC/HEIF taught to PIL (by pillow-heif) when such a file is
    first opened."""
    from PIL import Image

    if path.suffix.lower() in HEIF_EXTENSIONS:
        _register_heif()
    return Image.open(path)


@functools.cache
def _register_heif() -> None:
    """Register pillow-heif's opener with PIL, once (it applies the HEIF orientation and
    resets EXIF's, so exif_transpose does not turn the photo twice)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


_PIL_LIMIT = threading.Lock()


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[int]:
    """PIL's decompression-bomb check off for this thread's Image.open, which reads only the
    header; yields PIL's limit for the caller to check the size itself (the limit is a
    module global: decoding threads take turns)."""
    from PIL import Image

    with _PIL_LIMIT:
        default = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield default
        finally:
            Image.MAX_IMAGE_PIXELS = default


def _too_large(width: int, height: int, limit: int) -> str:
    return (
        f"image too large ({width}x{height} = {width * height / 1e6:.3g} MP; the limit is "
        f"{limit / 1e6:.3g} MP, --max-pixels)"
    )


def _to_rgb8(image) -> np.ndarray:
    """Convert a loaded PIL image of any mode to (H, W, 3) uint8."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(array)
        if not finite.all():  # NaN or infinity in a float TIFF: black, as no data
            array = np.where(finite, array, 0.0)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F" and np.nanmax(array, initial=0.0) <= 1.0:
            top = 1.0  # a float image in [0, 1], as HDR and scientific tools write them
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


# ------------------------------------------------------------------------------ depth


def read_depth(
    path: str | Path, scale: float = 1000.0, *, what: str = "depth", eight_bit: bool = False
) -> np.ndarray:
    """Read a depth map in metres; 0 or NaN marks missing depth.

    Args:
        path: .png (integer units, ``scale`` units per metre: 1000 for millimetres),
            .npy, .pfm, .tif/.tiff (float metres).
        scale: units per metre of integer PNG depth.
        what: what the map holds, for messages ("depth", "gradient", "disparity").
        eight_bit: accept 8-bit images (Middlebury's disparity); 8-bit depth is refused,
            as it is almost always a picture of depth rather than a measurement.

    Returns:
        (H, W) float32 metres.

    Raises:
        InputError: missing, unreadable, 8-bit, not real numbers, or not single-channel.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.is_dir() else "a folder, not a file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            depth = load_npy(path, what)
        elif suffix == ".pfm":
            depth = read_pfm(path)
        elif suffix in (".png", ".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as image:
                if image.mode in ("RGB", "RGBA", "P", "PA", "LA"):
                    raise InputError(path, f"a colour image ({image.mode}), not a {what} map")
                if image.mode in ("1", "L") and not eight_bit:
                    raise InputError(
                        path,
                        f"an 8-bit image ({image.mode}); {what} must be 16-bit integers or floats",
                    )
                depth = np.asarray(image)
            if suffix == ".png" or np.issubdtype(depth.dtype, np.integer):
                depth = depth.astype(np.float32) / scale
        else:
            raise InputError(
                path, f"unknown {what} format {suffix!r} (use .png, .npy, .pfm, .tiff)"
            )
    except InputError:
        raise
    except Exception as exc:  # PIL, numpy and our PFM parser raise many kinds
        raise InputError(path, f"cannot read {what} map ({exc})") from exc
    depth = np.asarray(depth)
    if depth.dtype.kind not in "iuf":  # bool, complex, strings: not measurements
        raise InputError(path, f"a {depth.dtype} array; {what} must be real numbers")
    depth = np.squeeze(depth.astype(np.float32))
    if depth.ndim != 2:
        raise InputError(path, f"expected a single-channel {what} map, got shape {depth.shape}")
    return depth


def valid_depth(path: str | Path, depth: np.ndarray) -> np.ndarray:
    """The valid values (finite, > 0) of a depth map read from ``path``.

    Raises:
        InputError: the map has none.
    """
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if valid.size == 0:
        raise InputError(Path(path), "no valid depth (every value is 0, negative or NaN)")
    return valid


def load_npy(path: str | Path, what: str, kinds: str = "iuf") -> np.ndarray:
    """The array of a .npy file, refusing a file that is not one (numpy would advise
    loading it with pickle) and, by dtype kind, arrays that are not numbers.

    Args:
        path: the file.
        what: what it holds, for messages ("depth", "gradients", "mask").
        kinds: the numpy dtype kinds accepted ("iuf": integers and floats; add "b" for
            booleans).

    Raises:
        InputError: no numpy header, unreadable, or a dtype of another kind.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise InputError(path, "not a .npy file (no numpy header)")
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read {what} ({exc})") from None
    if array.dtype.kind not in kinds:
        raise InputError(path, f"a {array.dtype} array; {what} must be real numbers")
    return array


def read_pfm(path: Path) -> np.ndarray:
    """Read a Portable Float Map: (H, W) or (H, W, 3) float32, rows top-down."""
    with open(path, "rb") as handle:
        header = handle.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError("not a PFM file")
        width, height = (int(v) for v in handle.readline().split())
        scale = float(handle.readline().strip())
        dtype = "<f4" if scale < 0 else ">f4"
        channels = 3 if header == b"PF" else 1
        data = np.fromfile(handle, dtype=dtype, count=width * height * channels)
    if data.size != width * height * channels:
        raise ValueError("truncated PFM file")
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Write an array as .npy bytes (built in memory: np.save to a FIFO fails on tell())."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    Path(path).write_bytes(buffer.getvalue())


def _pfm_bytes(depth: np.ndarray) -> bytes:
    """Encode (H, W) float32 as a little-endian PFM."""
    height, width = depth.shape
    header = f"Pf\n{width} {height}\n-1.0\n".encode("ascii")
    return header + np.flipud(depth).astype("<f4").tobytes()


def write_text(path: str | Path, text: str) -> Path:
    """Write a UTF-8 text file (JSON, CSV) atomically; return its path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_depth(
    path: str | Path,
    depth: np.ndarray,
    fmt: str | None = None,
    colormap: str = "turbo",
    depth_range: tuple[float, float] | None = None,
) -> Path:
    """Write a (H, W) depth map in metres atomically.

    Args:
        path: output file.
        depth: (H, W) float metres; NaN or <= 0 means no depth.
        fmt: one of DEPTH_FORMATS, or None to use the extension.
        colormap: matplotlib colormap name for the "color" format.
        depth_range: (near, far) metres mapped to the ends of the colormap; a fixed range
            keeps a batch of previews comparable. Default: the map's own 2nd-98th percentile.

    Returns:
        The path written.
    """
    fmt = depth_format(path, fmt)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    with atomic_path(path) as tmp:
        if fmt == "npy":
            write_npy(tmp, depth)
        elif fmt == "pfm":
            tmp.write_bytes(_pfm_bytes(depth))
        elif fmt == "png16":
            _save_pil(_to_png16(depth, shown_name(path)), tmp, "PNG")
        elif fmt == "tiff":
            _save_pil(depth, tmp, "TIFF")
        else:
            rgb = colorize(depth, colormap, depth_range)
            _save_pil(rgb, tmp, "JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return Path(path)


def _to_png16(depth: np.ndarray, path: str | Path) -> np.ndarray:
    """Metres -> uint16 millimetres, 0 for missing; an InputError for depth past 65.535 m
    (clipping it would put far points at the wrong place without a word)."""
    mm = np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0
    far = float(mm.max(initial=0.0)) / 1000.0
    if far > MAX_PNG16_METRES + 0.0005:
        raise InputError(
            path,
            f"depth reaches {far:.1f} m, past the {MAX_PNG16_METRES} m a 16-bit PNG holds in "
            "millimetres; write .npy, .tiff or .pfm",
        )
    return np.clip(np.rint(mm), 0, 65535).astype(np.uint16)


def _save_pil(array: np.ndarray, path: Path, pil_format: str) -> None:
    """Save an array through PIL with an explicit format (temporary names hide the suffix)."""
    from PIL import Image

    Image.fromarray(array).save(path, format=pil_format)


def check_colormap(colormap: str) -> None:
    """Raise a UsageError unless ``colormap`` names a matplotlib colormap."""
    from matplotlib import colormaps

    if colormap not in colormaps:
        raise UsageError(f"unknown colormap {colormap!r} (any matplotlib colormap name works)")


def check_depth_range(depth_range: tuple[float, float]) -> tuple[float, float]:
    """(near, far) metres for colours, or a UsageError: finite, 0 <= near < far."""
    near, far = (float(v) for v in depth_range)
    if not (np.isfinite(near) and np.isfinite(far) and 0 <= near < far):
        raise UsageError(
            f"depth range must be NEAR FAR metres with 0 <= NEAR < FAR, got {near:g} {far:g}"
        )
    return near, far


def colorize(
    depth: np.ndarray, colormap: str = "turbo", depth_range: tuple[float, float] | None = None
) -> np.ndarray:
    """Colour-map a depth map: near = first colour of the map, far = last; missing = black.

    Args:
        depth: (H, W) metres.
        colormap: a matplotlib colormap name.
        depth_range: (near, far) metres; default the 2nd and 98th percentiles of valid depth.

    Returns:
        (H, W, 3) uint8.
    """
    from matplotlib import colormaps

    check_colormap(colormap)
    valid = np.isfinite(depth) & (depth > 0)
    if depth_range is None:
        if valid.any():
            near, far = np.percentile(depth[valid], [2, 98])
        else:
            near, far = 0.0, 1.0
    else:
        near, far = depth_range
    scaled = np.clip((depth - near) / max(far - near, 1e-6), 0.0, 1.0)
    rgb = colormaps[colormap](np.where(valid, scaled, 0.0), bytes=True)[..., :3]
    rgb[~valid] = 0
    return rgb
