"""Depth and image format names and extensions, without numpy (the CLI's --help reads them).

See :mod:`dpde_cli.io` for what each format holds.
"""

from __future__ import annotations

from pathlib import Path

from dpde_cli.errors import UsageError

DEPTH_FORMATS = ("png16", "npy", "pfm", "tiff", "color")
_EXTENSION_FORMATS = {
    ".png": "png16",
    ".npy": "npy",
    ".pfm": "pfm",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "color",
    ".jpeg": "color",
}
FORMAT_EXTENSIONS = {
    "png16": ".png",
    "npy": ".npy",
    "pfm": ".pfm",
    "tiff": ".tiff",
    "color": ".png",
}
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".gif",
    ".jp2",
    ".heic",
    ".heif",
)
HEIF_EXTENSIONS = (".heic", ".heif")
"""Photos PIL reads only through pillow-heif (dpde_cli.io.open_image)."""


def depth_format(path: str | Path | None, fmt: str | None = None) -> str:
    """The depth format for an output path: ``fmt`` if given, else from the extension.

    Raises:
        UsageError: an unknown format, an extension that names none, or one that names
            another format than ``fmt`` (a colour preview may be a .png).
    """
    suffix = Path(path).suffix.lower() if path is not None else ""
    if fmt is not None:
        if fmt not in DEPTH_FORMATS:
            raise UsageError(f"unknown depth format {fmt!r}; use {', '.join(DEPTH_FORMATS)}")
        named = _EXTENSION_FORMATS.get(suffix)
        if named not in (None, fmt) and not (fmt == "color" and suffix == ".png"):
            raise UsageError(
                f"{path}: the extension {suffix} means {named}, not --format {fmt}; "
                f"change one of them"
            )
        return fmt
    if suffix not in _EXTENSION_FORMATS:
        raise UsageError(
            f"{path}: cannot tell the depth format from the extension {suffix!r}; "
            f"use .png (16-bit mm), .npy, .pfm, .tiff, .jpg (preview) or --format"
        )
    return _EXTENSION_FORMATS[suffix]
