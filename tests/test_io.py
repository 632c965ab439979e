"""Reading images of every kind and writing/reading depth in every format."""

from __future__ import annotations

import errno
import os
import stat
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpde_cli.errors import InputError, OutputError, UsageError
from dpde_cli.io import (
    atomic_path,
    colorize,
    read_depth,
    read_image,
    why_unwritable,
    write_depth,
    write_text,
    written_in_place,
)


@pytest.fixture
def depth() -> np.ndarray:
    rng = np.random.default_rng(0)
    d = rng.uniform(0.3, 9.0, size=(30, 40)).astype(np.float32)
    d[3, 4] = 0.0  # missing
    return d


@pytest.mark.parametrize(
    ("suffix", "tolerance"), [(".npy", 0.0), (".pfm", 0.0), (".tiff", 0.0), (".png", 5e-4)]
)
def test_depth_formats_round_trip(
    depth: np.ndarray, tmp_path: Path, suffix: str, tolerance: float
) -> None:
    path = write_depth(tmp_path / f"d{suffix}", depth)
    back = read_depth(path)
    assert back.dtype == np.float32 and back.shape == depth.shape
    np.testing.assert_allclose(back, depth, atol=tolerance, rtol=0)
    assert back[3, 4] == 0.0


def test_png16_is_millimetres(depth: np.ndarray, tmp_path: Path) -> None:
    path = write_depth(tmp_path / "d.png", depth)
    raw = np.asarray(Image.open(path))
    assert raw.dtype == np.uint16
    assert raw[0, 0] == round(depth[0, 0] * 1000)


def test_png16_refuses_depth_it_cannot_hold_and_writes_nothing(tmp_path: Path) -> None:
    path = write_depth(tmp_path / "edge.png", np.full((2, 2), 65.535, np.float32))
    assert np.asarray(Image.open(path)).max() == 65535
    with pytest.raises(InputError, match=r"far.png: depth reaches 80.0 m, past the 65.535 m"):
        write_depth(tmp_path / "far.png", np.full((2, 2), 80.0, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.png"]


def test_pfm_is_bottom_up_little_endian(tmp_path: Path) -> None:
    d = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = write_depth(tmp_path / "d.pfm", d)
    raw = path.read_bytes()
    assert raw.startswith(b"Pf\n3 2\n-1.0\n")
    first_row_stored = np.frombuffer(raw[-24:-12], "<f4")
    np.testing.assert_array_equal(first_row_stored, d[1])


def test_colour_preview_fixed_range(depth: np.ndarray, tmp_path: Path) -> None:
    rgb = colorize(depth, "turbo", (0.0, 10.0))
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
    assert (rgb[3, 4] == 0).all()  # missing depth is black
    # A fixed range makes the colour of a depth independent of the rest of the map.
    other = colorize(np.full_like(depth, depth[0, 0]), "turbo", (0.0, 10.0))
    assert (other[0, 0] == rgb[0, 0]).all()
    path = write_depth(tmp_path / "c.png", depth, "color", depth_range=(0.0, 10.0))
    assert Image.open(path).mode == "RGB"


def test_unknown_extension_and_colormap(depth: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="extension"):
        write_depth(tmp_path / "d.xyz", depth)
    with pytest.raises(UsageError, match="colormap"):
        colorize(depth, "no-such-map")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_errors_name_the_output_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    target.mkdir()  # a folder in the output's place: the rename fails
    with pytest.raises(OutputError) as caught, atomic_path(target) as tmp:
        tmp.write_bytes(b"data")
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
    assert caught.value.errno == errno.EISDIR and isinstance(caught.value, OSError)
    assert str(caught.value) == f"cannot write {target} (Is a directory)"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_write_through_a_link_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "results" / "r.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "r.json"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]


def test_streams_and_devices_are_written_in_place(tmp_path: Path) -> None:
    assert written_in_place("/dev/null") and written_in_place("/dev/stdout")
    assert not written_in_place(tmp_path / "r.json") and not written_in_place(tmp_path)
    assert not written_in_place("/dev/shm/dpde-run/r.json")  # a tmpfs of plain files


def test_the_writability_probe_creates_nothing(tmp_path: Path) -> None:
    assert why_unwritable(tmp_path / "a" / "b") is None
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    assert why_unwritable(tmp_path / "f" / "sub") == f"{tmp_path / 'f'} is a file, not a folder"


def test_atomic_write_into_a_fifo_writes_into_it(tmp_path: Path) -> None:
    # `--json /dev/null` (as root) replaced /dev/null with a plain file; a FIFO stands in
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_text(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == ["through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_read_depth_rejects_colour_and_missing(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="rgb.png: a colour image"):
        read_depth(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="no such file"):
        read_depth(tmp_path / "none.png")


# ---------------------------------------------------------------------------- images


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :10] = 255  # white on the left
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = _save(image, tmp_path / "rot.jpg", exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (40, 20, 3)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # left became top


@pytest.mark.parametrize("suffix", [".heic", ".heif"])
def test_heic_photos_are_read(suffix: str, tmp_path: Path) -> None:
    # what phones save; PIL alone says "cannot identify image file"
    import pillow_heif

    array = np.zeros((24, 40, 3), np.uint8)
    array[:, :10] = 255  # white on the left
    path = tmp_path / f"phone{suffix}"
    pillow_heif.from_pillow(Image.fromarray(array)).save(path, quality=95)
    out = read_image(path)
    assert out.shape == (24, 40, 3)
    assert out[:, :8].mean() > 200 and out[:, 12:].mean() < 50


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "I", "1", "CMYK", "F"])
def test_odd_modes_become_rgb8(mode: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray((rng.integers(0, 65535, (12, 16))).astype(np.uint16))
    elif mode == "I":
        image = Image.fromarray(rng.integers(0, 65535, (12, 16)).astype(np.int32))
    elif mode == "F":
        image = Image.fromarray(rng.uniform(0, 255, (12, 16)).astype(np.float32))
    else:
        image = base.convert(mode)
    suffix = ".tiff" if mode in ("I", "F", "CMYK") else ".png"
    out = read_image(_save(image, tmp_path / f"img{suffix}"))
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8


def test_sixteen_bit_gray_keeps_its_range(tmp_path: Path) -> None:
    array = np.array([[0, 65535]], dtype=np.uint16)
    out = read_image(_save(Image.fromarray(array), tmp_path / "g16.png"))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)  # transparent black
    out = read_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "t.png"))
    assert (out == 255).all()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"hello world", "not an image")],
)
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"bad.jpg: {message}"):
        read_image(path)


def test_truncated_and_missing(tmp_path: Path) -> None:
    full = _save(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
        tmp_path / "full.png",
    )
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(InputError, match="cut.png: cannot decode"):
        read_image(cut)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="not a file"):
        read_image(tmp_path)


def test_a_float_image_in_0_1_is_read_as_0_1(tmp_path: Path) -> None:
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32)[None].repeat(4, axis=0)
    path = _save(Image.fromarray(ramp, mode="F"), tmp_path / "float.tiff")
    rgb = read_image(path)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and rgb[0, 8, 0] in (135, 136)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = _save(Image.new("L", (300, 300)), tmp_path / "big.png")
    with pytest.raises(InputError, match=r"too large \(300x300 = 0.09 MP; the limit is 0.01 MP"):
        read_image(path, max_pixels=10_000)


def test_max_pixels_can_raise_pil_s_own_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 108 MP phone photos exceed PIL's 89 MP default: --max-pixels must be able to allow them
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # PIL's default, scaled down
    path = _save(Image.new("L", (300, 300)), tmp_path / "big.png")
    with pytest.raises(InputError, match="too large"):
        read_image(path)
    assert read_image(path, max_pixels=100_000).shape == (300, 300, 3)
    assert Image.MAX_IMAGE_PIXELS == 10_000  # PIL's setting is left as it was


def test_a_float_tiff_with_nan_and_infinity_reads_without_a_warning(tmp_path: Path) -> None:
    values = np.full((4, 6), 0.5, np.float32)
    values[0, 0], values[1, 1], values[2, 2] = np.nan, np.inf, -np.inf
    Image.fromarray(values).save(tmp_path / "f.tiff")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in cast"
        image = read_image(tmp_path / "f.tiff")
    assert image.shape == (4, 6, 3) and image[3, 3, 0] == 128 and image[0, 0, 0] == 0
