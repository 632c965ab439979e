"""Training and evaluation transforms on dpde sample dicts (torch, CPU, per sample).

Each operation is a plain function on a sample dict (see ``dpde_cli.data._common``) that
returns a new dict; randomness comes only from an explicit ``torch.Generator``, so a sample
is augmented the same way wherever and whenever it is loaded (``sample_generator`` seeds
one from (seed, epoch, index)). Depth is resampled with nearest neighbours (no depth is
invented between a foreground and a background pixel) and out-of-image pixels become
invalid (depth 0). Intrinsics follow resizes, crops and flips; a rotation leaves them
as they were (approximate for the small angles used).

Example:
    >>> augment = TrainTransform(size=(240, 320))
    >>> sample = augment(dataset[i], sample_generator(seed=0, epoch=3, index=i))
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dpde_cli.training.config import APPEARANCES

Sample = dict
"""A dpde sample dict: image (3, H, W), depth (1, H, W), valid (1, H, W), intrinsics, name."""


def sample_generator(seed: int, epoch: int, index: int, *more: int) -> torch.Generator:
    """A torch.Generator seeded from (seed, epoch, index, *more) through numpy's SeedSequence."""
    entropy = [int(seed), int(epoch), int(index), *(int(m) for m in more)]
    state = np.random.SeedSequence(entropy).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]) >> 1)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One float drawn uniformly from [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=generator))


def _nearest(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-aligned nearest resize of (C, H, W) (PIL's NEAREST, torch's nearest-exact)."""
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    dtype = tensor.dtype
    out = F.interpolate(tensor[None].float(), size=size, mode="nearest-exact")[0]
    return out.to(dtype)


def _scale_intrinsics(
    intrinsics: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]
) -> torch.Tensor:
    """[fx, fy, cx, cy] of an image resized from src to dst = (H, W) (pixel centres)."""
    from dpde_cli.data._common import scale_intrinsics

    return torch.from_numpy(scale_intrinsics(intrinsics.tolist(), src, dst))


def resize(sample: Sample, size: tuple[int, int], depth_scale: float = 1.0) -> Sample:
    """Resize to size = (H, W): image bilinear (antialiased), depth and valid nearest.

    Args:
        sample: a sample dict.
        size: (height, width) in pixels.
        depth_scale: depth is divided by it (the random-scale augmentation: enlarging the
            image by s looks like a camera s times closer).

    Returns:
        A new sample dict.
    """
    out = dict(sample)
    src = tuple(sample["image"].shape[-2:])
    size = (int(size[0]), int(size[1]))
    if src != size:
        out["image"] = F.interpolate(
            sample["image"][None], size=size, mode="bilinear", align_corners=False, antialias=True
        )[0].clamp(0.0, 1.0)
        out["depth"] = _nearest(sample["depth"], size)
        out["valid"] = _nearest(sample["valid"], size)
        if "intrinsics" in sample:
            out["intrinsics"] = _scale_intrinsics(sample["intrinsics"], src, size)
    if depth_scale != 1.0:
        out["depth"] = out["depth"] / depth_scale
    return out


def canonical_depth(sample: Sample, canonical_focal: float) -> Sample | None:
    """The sample with depth as a camera of focal length ``canonical_focal`` would see it.

    A network judges distance by apparent size: an object at depth d seen with focal
    length f (pixels) looks as large as the same object at d * canonical_focal / f seen
    with ``canonical_focal``. Depth is multiplied by that ratio, f being the geometric mean
    of the sample's fx and fy at its current size. None when the sample's focal length is
    unknown (NaN intrinsics).
    """
    intrinsics = sample.get("intrinsics")
    if intrinsics is None:
        return None
    fx, fy = (float(v) for v in intrinsics[:2])
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
        return None
    out = dict(sample)
    out["depth"] = sample["depth"] * (canonical_focal / math.sqrt(fx * fy))
    return out


def cover_size(src: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """The smallest (H, W) of the source's aspect ratio that covers ``size`` = (H, W).

    ``size`` itself when the aspect ratios agree within 1% (no distortion worth avoiding).
    """
    (src_h, src_w), (height, width) = src, size
    if abs((src_w / src_h) / (width / height) - 1.0) <= 0.01:
        return size
    factor = max(height / src_h, width / src_w)
    return max(height, round(src_h * factor)), max(width, round(src_w * factor))


def crop(sample: Sample, top: int, left: int, size: tuple[int, int]) -> Sample:
    """Crop the window of size = (H, W) whose top-left pixel is (top, left)."""
    height, width = size
    out = dict(sample)
    for key in ("image", "depth", "valid"):
        out[key] = sample[key][:, top : top + height, left : left + width]
    if "intrinsics" in sample:
        fx, fy, cx, cy = sample["intrinsics"].tolist()
        out["intrinsics"] = torch.tensor([fx, fy, cx - left, cy - top], dtype=torch.float32)
    return out


def random_crop(sample: Sample, size: tuple[int, int], generator: torch.Generator) -> Sample:
    """A uniformly placed crop of size = (H, W); the sample must be at least that large."""
    height, width = sample["image"].shape[-2:]
    if height < size[0] or width < size[1]:
        raise ValueError(f"cannot crop {tuple(size)} from an image of {(height, width)}")
    top = int(torch.randint(0, height - size[0] + 1, (), generator=generator))
    left = int(torch.randint(0, width - size[1] + 1, (), generator=generator))
    return crop(sample, top, left, size)


def hflip(sample: Sample) -> Sample:
    """Mirror left-right (cx becomes W - 1 - cx)."""
    out = dict(sample)
    for key in ("image", "depth", "valid"):
        out[key] = sample[key].flip(-1)
    if "intrinsics" in sample:
        fx, fy, cx, cy = sample["intrinsics"].tolist()
        width = sample["image"].shape[-1]
        out["intrinsics"] = torch.tensor([fx, fy, width - 1 - cx, cy], dtype=torch.float32)
    return out


def rotate(sample: Sample, degrees: float) -> Sample:
    """Rotate about the image centre by ``degrees`` (positive: clockwise on screen).

    The image is resampled bilinearly, depth and validity with nearest neighbours; pixels
    that come from outside the image are black and invalid. A roll of the camera about its
    optical axis leaves each point's depth (camera z) unchanged, so values are kept.
    """
    if degrees == 0.0:
        return dict(sample)
    height, width = sample["image"].shape[-2:]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    aspect = width / height
    # affine_grid works in normalised coordinates; undo the aspect so the turn is rigid.
    theta = torch.tensor(
        [[cos, sin / aspect, 0.0], [-sin * aspect, cos, 0.0]], dtype=torch.float32
    )[None]
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    out = dict(sample)
    out["image"] = F.grid_sample(
        sample["image"][None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[0].clamp(0.0, 1.0)
    depth = F.grid_sample(
        sample["depth"][None], grid, mode="nearest", padding_mode="zeros", align_corners=False
    )[0]
    valid = F.grid_sample(
        sample["valid"][None].float(), grid, mode="nearest", padding_mode="zeros",
        align_corners=False,
    )[0] > 0.5  # fmt: skip
    out["valid"] = valid & (depth > 0)
    out["depth"] = torch.where(out["valid"], depth, torch.zeros_like(depth))
    return out


def color_jitter(
    image: torch.Tensor,
    generator: torch.Generator,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    gamma: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """Random brightness, contrast, saturation and gamma of a (3, H, W) image in [0, 1].

    Factors are drawn uniformly from [1 - x, 1 + x] (gamma from its range), applied in
    that order; the result is clamped to [0, 1].
    """
    image = image * _uniform(generator, 1 - brightness, 1 + brightness)
    mean = image.mean()
    image = (image - mean) * _uniform(generator, 1 - contrast, 1 + contrast) + mean
    grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
    image = (image - grey) * _uniform(generator, 1 - saturation, 1 + saturation) + grey
    image = image.clamp(0.0, 1.0) ** _uniform(generator, *gamma)
    return image.clamp(0.0, 1.0)


def jpeg_round_trip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-compress and decode (pillow) a (3, H, W) image in [0, 1] at ``quality`` (1-95)."""
    from PIL import Image

    array = (image.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    out = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out).permute(2, 0, 1).to(image.device)


def randomise_appearance(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Strong photometric randomisation of a (3, H, W) image in [0, 1]; geometry untouched.

    For training on rendered scenes: the network should read depth from layout,
    perspective and texture gradients, not from the renderer's look. In order: a wide
    colour jitter (brightness, contrast +-0.4, saturation +-0.5, gamma 0.7-1.4); a colour
    cast (per-channel gain 0.85-1.15); greyscale (p 0.15); Gaussian blur (p 0.3, sigma
    0.3-1.2 px); sensor noise (p 0.5, sigma 0.003-0.03); JPEG (p 0.3, quality 40-95).
    Every draw comes from ``generator``.
    """
    # torchvision costs a second to import; the renderer and the standard pipeline, which
    # also import this module, do not need it (as models.encoders, only where it is used).
    import torchvision.transforms.v2.functional as TF

    image = color_jitter(image, generator, 0.4, 0.4, 0.5, (0.7, 1.4))
    gains = 0.85 + 0.3 * torch.rand((3, 1, 1), generator=generator)
    image = (image * gains).clamp(0.0, 1.0)
    if float(torch.rand((), generator=generator)) < 0.15:
        image = TF.rgb_to_grayscale(image, num_output_channels=3)
    if float(torch.rand((), generator=generator)) < 0.3:
        sigma = _uniform(generator, 0.3, 1.2)
        size = 2 * math.ceil(3 * sigma) + 1
        image = TF.gaussian_blur(image, [size, size], [sigma, sigma])
    if float(torch.rand((), generator=generator)) < 0.5:
        sigma = _uniform(generator, 0.003, 0.03)
        image = image + sigma * torch.randn(image.shape, generator=generator)
    image = image.clamp(0.0, 1.0)
    if float(torch.rand((), generator=generator)) < 0.3:
        image = jpeg_round_trip(image, int(torch.randint(40, 96, (), generator=generator)))
    return image


@dataclass(frozen=True)
class TrainTransform:
    """The standard depth augmentations, ending at the network's input size.

    Order: random scale s in ``scale_range`` (resize to s times ``size`` in one step, or,
    for an image of another aspect ratio, to the smallest size of its own aspect ratio
    covering that; depth divided by s); random rotation in +-``rotation_deg``; random crop
    back to ``size``; horizontal flip with ``flip_prob``; colour jitter. With
    ``canonical_focal``, depth is instead scaled to the canonical camera at the end
    (``canonical_depth``, from the final intrinsics, which include the zoom s), falling
    back to the division by s for a sample of unknown focal length.

    Attributes:
        size: (H, W) network input size, pixels.
        scale_range: (low, high) of s, >= 1.
        rotation_deg: largest rotation, degrees.
        flip_prob: probability of a left-right flip.
        brightness, contrast, saturation: jitter amplitudes (factor in [1 - x, 1 + x]).
        gamma: (low, high) gamma range.
        appearance: "standard" or "strong" (one of APPEARANCES).
        canonical_focal: focal length (pixels at ``size``) the depth targets refer to, or
            None for metric depth as captured.
    """

    size: tuple[int, int]
    scale_range: tuple[float, float] = (1.0, 1.5)
    rotation_deg: float = 5.0
    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: tuple[float, float] = (0.9, 1.1)
    appearance: str = "standard"
    canonical_focal: float | None = None

    def __post_init__(self) -> None:
        if self.appearance not in APPEARANCES:
            raise ValueError(
                f"unknown appearance {self.appearance!r}; use {', '.join(APPEARANCES)}"
            )

    def __call__(self, sample: Sample, generator: torch.Generator) -> Sample:
        """Augment one sample with draws from ``generator``."""
        height, width = self.size
        scale = _uniform(generator, *self.scale_range)
        big = (max(height, round(height * scale)), max(width, round(width * scale)))
        big = cover_size(tuple(sample["image"].shape[-2:]), big)
        out = resize(sample, big)
        out = rotate(out, _uniform(generator, -self.rotation_deg, self.rotation_deg))
        out = random_crop(out, self.size, generator)
        if float(torch.rand((), generator=generator)) < self.flip_prob:
            out = hflip(out)
        canonical = None
        if self.canonical_focal is not None:
            canonical = canonical_depth(out, self.canonical_focal)
        if canonical is not None:
            out = canonical
        elif scale != 1.0:
            out["depth"] = out["depth"] / scale
        if self.appearance == "strong":
            out["image"] = randomise_appearance(out["image"], generator)
        else:
            out["image"] = color_jitter(
                out["image"],
                generator,
                self.brightness,
                self.contrast,
                self.saturation,
                self.gamma,
            )
        return out


@dataclass(frozen=True)
class EvalTransform:
    """Resize to the network input size (image bilinear, depth nearest); no randomness.

    With ``canonical_focal``, depth is scaled to the canonical camera (``canonical_depth``)
    where the sample's focal length is known.
    """

    size: tuple[int, int]
    canonical_focal: float | None = None

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        """Resize one sample."""
        out = resize(sample, self.size)
        if self.canonical_focal is not None:
            out = canonical_depth(out, self.canonical_focal) or out
        return out
