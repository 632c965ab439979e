"""Reading what the fusion takes besides a depth map: gradients and confidence masks, each
checked against the depth map it refines (shape, units, view).

Not in ``io.py``: these readers judge their files against a depth map (its shape, its
range, the photo it belongs to), which is the fusion's business, not a file format's.

Example:
    >>> depth = read_depth("depth.png")
    >>> grad_x, grad_y = read_gradients(depth.shape, both="depth_gradients.npy")
    >>> check_units("depth.png", valid_depth("depth.png", depth), grad_x, grad_y)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpde_cli.errors import InputError


def read_gradients(
    shape: tuple[int, int],
    gx: str | Path | None = None,
    gy: str | Path | None = None,
    both: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(G_x, G_y) for a depth map of ``shape``, metres per pixel, from two single-channel
    files (``gx``, ``gy``: .npy, .pfm or .tiff) or one (2, H, W) .npy (``both``).

    Raises:
        InputError: naming the file: another shape, not numbers, NaN or infinity, PNG
            (gradients are signed), or ``both`` not a (2, H, W) .npy.
    """
    from dpde_cli.io import load_npy, read_depth

    if both is not None:
        both = Path(both)
        if both.suffix.lower() != ".npy":
            raise InputError(both, "--gradients takes a (2, H, W) .npy file")
        stack = load_npy(both, "gradients")
        if stack.ndim != 3 or stack.shape[0] != 2:
            raise InputError(both, f"expected shape (2, H, W), got {stack.shape}")
        stack = stack.astype(np.float32)
        pairs = ((both, stack[0]), (both, stack[1]))
    else:
        paths = (Path(gx), Path(gy))
        for path in paths:
            if path.suffix.lower() == ".png":
                raise InputError(path, "gradients are signed: use .npy, .pfm or .tiff, not PNG")
        pairs = tuple((p, read_depth(p, what="gradient")) for p in paths)
    for path, values in pairs:
        if values.shape != tuple(shape):
            raise InputError(
                path, f"gradient shape {values.shape} does not match the depth map's {tuple(shape)}"
            )
        if not np.isfinite(values).all():
            raise InputError(path, "gradients contain NaN or infinity")
    return pairs[0][1], pairs[1][1]


def check_units(
    path: str | Path, valid: np.ndarray, grad_x: np.ndarray, grad_y: np.ndarray
) -> None:
    """Catch depth and gradients in different units (e.g. millimetres against metres).

    Args:
        path: the depth map, for messages.
        valid: its valid values (``io.valid_depth``).

    Raises:
        InputError: gradients larger than the whole depth range, or a median depth past
            500 m (millimetres read as metres).
    """
    # One pixel's step can never exceed the whole depth range when the units agree.
    span = float(valid.max() - valid.min())
    largest = max(float(np.abs(grad_x).max()), float(np.abs(grad_y).max()))
    if span > 0 and largest > 2.0 * span:
        raise InputError(
            path,
            "the gradients are larger than the whole depth range: depth "
            "and gradients seem to be in different units (depth in metres; "
            "PNG depth uses --depth-scale units per metre)",
        )
    if float(np.median(valid)) > 500:
        raise InputError(
            path,
            f"median depth {float(np.median(valid)):.0f} m: the depth "
            "looks like millimetres; set --depth-scale",
        )


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A confidence mask in [0, 1] for a depth map of ``shape``: a PNG (non-zero = 1) or
    an .npy of numbers.

    Raises:
        InputError: unreadable, another shape, or values outside [0, 1].
    """
    from PIL import Image

    from dpde_cli.io import load_npy

    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            values = load_npy(path, "mask", kinds="biuf").astype(np.float32)
        else:
            with Image.open(path) as image:
                values = (np.asarray(image.convert("L")) > 0).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read mask ({exc})") from None
    if values.shape != tuple(shape):
        raise InputError(
            path, f"mask shape {values.shape} does not match the depth map's {tuple(shape)}"
        )
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise InputError(path, "mask values must lie in [0, 1]")
    return values


def check_same_view(
    image_path: str | Path,
    image: tuple[int, int],
    depth_path: str | Path,
    depth: tuple[int, int],
) -> None:
    """A photo of (H, W) ``image`` and a depth map of (H, W) ``depth`` must show one view
    (``geometry.same_aspect``).

    Raises:
        InputError: naming the depth map and the photo.
    """
    from dpde_cli.geometry import same_aspect

    if not same_aspect(image, depth):
        raise InputError(
            depth_path,
            f"depth map {depth[1]}x{depth[0]} does not have the "
            f"aspect ratio of {image_path} ({image[1]}x{image[0]})",
        )
