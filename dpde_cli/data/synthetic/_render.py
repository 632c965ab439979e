"""Camera model (exposure, blur, noise, JPEG, border) and the public rendering API."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dpde_cli.data.synthetic._layout import (
    sample_scene,
)
from dpde_cli.data.synthetic._raycast import _camera_rays, _make_tiles, _pack, _trace
from dpde_cli.data.synthetic._scene import (
    _M_GLOSS,
    Scene,
    SceneConfig,
    SensorParams,
)
from dpde_cli.data.synthetic._shading import (
    _ambient_occlusion,
    _direct_light,
    _materials,
)
from dpde_cli.data.synthetic._surface import _gather, _surface
from dpde_cli.data.transforms import jpeg_round_trip

# Camera model
# --------------------------------------------------------------------------------------


def _blur(img: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (C, H, W) with reflected borders (explicit shifts, so the
    result does not depend on a convolution backend)."""
    if sigma < 0.2:
        return img
    radius = max(1, math.ceil(2.5 * sigma))
    k = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    k = [v / sum(k) for v in k]
    for dim in (1, 2):
        pad = [0, 0, 0, 0]
        pad[(2 - dim) * 2 : (2 - dim) * 2 + 2] = [radius, radius]
        x = torch.nn.functional.pad(img[None], pad, mode="reflect")[0]
        n = img.shape[dim]
        img = sum(wk * x.narrow(dim, i, n) for i, wk in enumerate(k))
    return img


def _develop(rad: Tensor, s: SensorParams, seed: int) -> Tensor:
    """Linear radiance (3, H, W) -> image in [0, 1]: exposure, white balance, saturation,
    vignetting, gamma, tone curve, blur, sharpening, noise, JPEG, border."""
    _, h, w = rad.shape
    lum = 0.2126 * rad[0] + 0.7152 * rad[1] + 0.0722 * rad[2]
    key = torch.quantile(lum.reshape(-1)[:: max(1, lum.numel() // 20000)], 0.5).clamp(min=1e-6)
    img = rad * (s.exposure**s.gamma / key)
    img = img * torch.tensor(s.wb_gains, device=img.device)[:, None, None]
    grey = img.mean(0, keepdim=True)
    img = grey + (img - grey) * s.saturation
    if s.vignette > 0:
        yy = torch.linspace(-1, 1, h, device=img.device)[:, None]
        xx = torch.linspace(-1, 1, w, device=img.device)[None, :]
        img = img * (1 - s.vignette * ((xx * xx + yy * yy) / 2) ** 1.5)
    img = img.clamp(0.0, 1.0) ** (1.0 / s.gamma)
    img = img + s.contrast * (img * img * (3.0 - 2.0 * img) - img)
    img = _blur(img, s.blur_sigma)
    if s.sharpen > 0:
        img = img + s.sharpen * (img - _blur(img, 1.0))
    if s.noise_sigma > 0 or s.shot_noise > 0:
        gen = torch.Generator().manual_seed(int(seed) * 2654435761 % (1 << 63) + 17)
        noise = torch.randn(3, h, w, generator=gen).to(img.device)
        luma = torch.randn(1, h, w, generator=gen).to(img.device)
        sigma = s.noise_sigma + s.shot_noise * torch.sqrt(img.clamp(min=0))
        img = img + sigma * (0.6 * noise + 0.8 * luma)
    img = img.clamp(0.0, 1.0)
    if s.jpeg_quality > 0:
        img = jpeg_round_trip(img, s.jpeg_quality)
    if s.border > 0:
        img = torch.where(_border_mask(h, w, s.border, img.device), img, s.border_value)
    return img


def _border_mask(h: int, w: int, border: int, device: torch.device) -> Tensor:
    """(1, H, W) bool, False on a frame of ``border`` pixels."""
    valid = torch.ones(1, h, w, dtype=torch.bool, device=device)
    if border > 0:
        valid[:, :border] = False
        valid[:, h - border :] = False
        valid[:, :, :border] = False
        valid[:, :, w - border :] = False
    return valid


# --------------------------------------------------------------------------------------
# Public rendering API
# --------------------------------------------------------------------------------------


def render_scenes(
    scenes: list[Scene], config: SceneConfig | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Ray cast and shade sampled scenes as one batch.

    Args:
        scenes: scenes from :func:`sample_scene` (all drawn with ``config``).
        config: image size and rendering switches; defaults to :class:`SceneConfig`.
        device: torch device to render on.

    Returns:
        A dict with ``image`` (B, 3, H, W) float32 in [0, 1], ``depth`` (B, 1, H, W)
        float32 metres (camera z; 0 where not valid), ``valid`` (B, 1, H, W) bool,
        ``intrinsics`` (B, 4) float32 [fx, fy, cx, cy] in pixels, ``name`` list of str.
    """
    cfg = config or SceneConfig()
    dev = torch.device(device)
    tiles = _make_tiles(cfg.height, cfg.width, dev)
    p = _pack(scenes, dev)
    d = _camera_rays(p, tiles)
    o = p.cam_pos[:, None, :]
    t, sid = _trace(o, d, p, tiles)
    pt = o + t[..., None] * d
    surf = _surface(pt, sid, p)
    ray_len = d.norm(dim=-1, keepdim=True)
    view = -d / ray_len
    facing = (surf.normal * view).sum(-1, keepdim=True) < 0
    surf.normal = torch.where(facing, -surf.normal, surf.normal)
    n = surf.normal
    cos_v = (n * view).sum(-1).clamp(min=0.2)
    footprint = t * ray_len[..., 0] / p.intrinsics[:, None, 0:2].mean(-1) / cos_v
    mat = _gather(p.materials, sid)
    albedo, emit = _materials(mat, surf, footprint)
    gloss = mat[..., _M_GLOSS : _M_GLOSS + 1]
    direct = _direct_light(pt, n, view, gloss, t, p, tiles, cfg)
    ambient = p.ambient[:, None, None] * (0.8 + 0.2 * n[..., 2:3])
    if cfg.ambient_occlusion:
        ambient = ambient * _ambient_occlusion(pt, n, p, tiles)
    rad = tiles.to_image(albedo * (ambient + direct) + emit)
    depth = tiles.to_image(t[..., None])
    images, valids = [], []
    for i, s in enumerate(scenes):
        images.append(_develop(rad[i], s.sensor, s.seed))
        valids.append(_border_mask(cfg.height, cfg.width, s.sensor.border, dev))
    valid = torch.stack(valids) & torch.isfinite(depth) & (depth > 0)
    return {
        "image": torch.stack(images).float(),
        "depth": torch.where(valid, depth, 0.0).float(),
        "valid": valid,
        "intrinsics": p.intrinsics.float(),
        "name": [f"synthetic-{s.seed:08d}" for s in scenes],
    }


def render_batch(
    seeds: list[int] | range, config: SceneConfig | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Render several scenes in one batch (faster on a GPU).

    Args:
        seeds: scene seeds.
        config: see :class:`SceneConfig`.
        device: torch device.

    Returns:
        The batched dict of :func:`render_scenes`; item i matches ``render_scene(seeds[i])``
        up to floating-point rounding.

    Example:
        >>> render_batch([1, 2], SceneConfig(height=60, width=80))["depth"].shape
        torch.Size([2, 1, 60, 80])
    """
    cfg = config or SceneConfig()
    return render_scenes([sample_scene(s, cfg) for s in seeds], cfg, device)


def render_scene(
    seed: int, config: SceneConfig | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Render one scene: the sample format of every dpde dataset.

    Args:
        seed: scene seed; the same seed gives the same scene.
        config: see :class:`SceneConfig`.
        device: torch device to render on (the tensors returned live there).

    Returns:
        ``image`` (3, H, W) float32 in [0, 1], ``depth`` (1, H, W) float32 metres (camera
        z), ``valid`` (1, H, W) bool, ``intrinsics`` (4,) float32 [fx, fy, cx, cy] pixels,
        ``name`` str.

    Example:
        >>> render_scene(0, SceneConfig(height=48, width=64))["depth"].min() > 0
        tensor(True)
    """
    out = render_batch([seed], config, device)
    return {k: v[0] for k, v in out.items()}


class SyntheticScenes(Dataset):
    """A map-style dataset of procedural scenes; item i is ``render_scene(seed + i)``.

    Args:
        length: number of scenes.
        config: see :class:`SceneConfig`.
        seed: seed of item 0.
        device: where to render (keep "cpu" inside DataLoader workers).

    Example:
        >>> ds = SyntheticScenes(10, SceneConfig(height=48, width=64))
        >>> sorted(ds[3])
        ['depth', 'image', 'intrinsics', 'name', 'valid']
    """

    def __init__(
        self,
        length: int,
        config: SceneConfig | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.length = int(length)
        self.config = config or SceneConfig()
        self.seed = int(seed)
        self.device = device

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        return render_scene(self.seed + index, self.config, self.device)


def write_sample(sample: dict, path_rgb: str | Path, path_depth: str | Path) -> None:
    """Write a rendered sample as an 8-bit RGB PNG and a 16-bit depth PNG (mm, 0 = invalid).

    Both files are written atomically (see dpde_cli.io).
    """
    from PIL import Image

    from dpde_cli.io import atomic_path, write_depth

    rgb = (sample["image"].permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).clip(0, 255)
    depth = sample["depth"][0].detach().float().cpu().numpy().copy()
    depth[~sample["valid"][0].cpu().numpy()] = 0.0
    with atomic_path(path_rgb) as tmp:
        Image.fromarray(rgb.astype(np.uint8)).save(tmp, format="PNG")
    write_depth(path_depth, depth, "png16")


def render_example(
    path_rgb: str | Path,
    path_depth_png16_mm: str | Path,
    seed: int = 0,
    config: SceneConfig | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Render one scene and write it as an 8-bit RGB PNG and a 16-bit depth PNG (mm).

    Args:
        path_rgb: output colour image (.png).
        path_depth_png16_mm: output depth, uint16 millimetres, 0 = invalid.
        seed: scene seed.
        config: defaults to 480 x 640 with no frame border.
        device: torch device.

    Returns:
        The rendered sample (see :func:`render_scene`).

    Example:
        >>> _ = render_example("/tmp/rgb.png", "/tmp/depth.png", seed=3)
    """
    cfg = config or SceneConfig(height=480, width=640, border_prob=0.0)
    sample = render_scene(seed, cfg, device)
    write_sample(sample, path_rgb, path_depth_png16_mm)
    return sample


def export_folder(
    root: str | Path,
    count: int,
    config: SceneConfig | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
) -> Path:
    """Render scenes seed .. seed+count-1 into the `folder` dataset layout.

    Writes ``root/rgb/<name>.png``, ``root/depth/<name>.png`` (uint16 mm) and
    ``root/intrinsics.json`` ({name: [fx, fy, cx, cy]}), so that a rendered set trains and
    evaluates like any RGB-D capture (``--dataset folder``). Scenes already on disk are
    kept, so an interrupted export resumes where it stopped.

    Args:
        root: output folder (created).
        count: number of scenes.
        config: see :class:`SceneConfig`.
        seed: seed of the first scene.
        device: torch device to render on.
        batch_size: scenes ray cast together by :func:`render_batch` (meant for a GPU);
            the files match those of ``batch_size=1`` up to floating-point rounding.

    Returns:
        ``root``.
    """
    import json

    from dpde_cli.io import write_text

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    root = Path(root)
    cfg = config or SceneConfig()
    intrinsics_path = root / "intrinsics.json"
    intrinsics = json.loads(intrinsics_path.read_text()) if intrinsics_path.is_file() else {}

    def done(index: int) -> bool:
        name = f"synthetic-{index:08d}"
        return name in intrinsics and all(
            (root / sub / f"{name}.png").is_file() for sub in ("rgb", "depth")
        )

    todo = [index for index in range(seed, seed + count) if not done(index)]
    for start in range(0, len(todo), batch_size):
        batch = render_batch(todo[start : start + batch_size], cfg, device)
        for i, name in enumerate(batch["name"]):
            sample = {key: value[i] for key, value in batch.items()}
            write_sample(sample, root / "rgb" / f"{name}.png", root / "depth" / f"{name}.png")
            intrinsics[name] = [round(float(v), 4) for v in sample["intrinsics"]]
            if len(intrinsics) % 50 == 0:  # an interrupted export keeps most entries
                write_text(intrinsics_path, json.dumps(intrinsics))
    write_text(intrinsics_path, json.dumps(intrinsics))
    return root
