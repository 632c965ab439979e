"""Running a DPDE model on images: resize, network, fusion, back to full resolution.

Example:
    >>> predictor = create_predictor("dpde-lite", device="cpu", fusion=FusionConfig())
    >>> [prediction] = predictor.predict([read_image("photo.jpg")])
    >>> prediction.depth.shape  # (H, W) metres at the photo's resolution
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dpde_cli.registry import InferenceSpec, resolve_inference

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

    from dpde_cli.fusion import FusionConfig


@dataclass
class Prediction:
    """A model's answer for one image, at the image's full resolution.

    Attributes:
        depth: (H, W) float32 metres, fused unless fusion was off.
        depth_unfused: (H, W) float32 metres from the global network alone.
        gradients: (2, H, W) float32 predicted (G_x, G_y), metres per full-resolution pixel.
        network_size: (h, w) the network ran at.
        fusion: fusion statistics (iterations, objective, converged), or None.
        seconds: wall time for this image's share of its batch.
    """

    depth: np.ndarray
    depth_unfused: np.ndarray
    gradients: np.ndarray
    network_size: tuple[int, int]
    fusion: dict[str, Any] | None
    seconds: float


@dataclass
class BatchPrediction:
    """A batch's answer as tensors at the input resolution (see Prediction for the fields).

    Attributes:
        depth: (B, 1, H, W) metres, fused unless fusion was off.
        depth_unfused: (B, 1, H, W) metres.
        gradients: (B, 2, H, W) metres per pixel.
        network_size: (h, w) the network ran at.
        fusion: per image, fusion statistics or None.
    """

    depth: torch.Tensor
    depth_unfused: torch.Tensor
    gradients: torch.Tensor
    network_size: tuple[int, int]
    fusion: list[dict[str, Any] | None]


def inference_size(trained: tuple[int, int], image: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) to run a model at for an image of size (H, W).

    The trained size when the aspect ratios match (within 1%); otherwise a size with the
    same pixel count and the image's aspect ratio, each side a multiple of 32.
    """
    from dpde_cli.geometry import same_aspect

    if same_aspect(image, trained):
        return trained
    th, tw = trained
    ih, iw = image
    pixels = th * tw
    width = math.sqrt(pixels * iw / ih)
    height = pixels / width
    return max(32, round(height / 32) * 32), max(32, round(width / 32) * 32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1].

    The conversion happens in numpy, so a read-only array (``np.asarray(Image.open(p))``)
    is fine: torch warns on a view of one.
    """
    import torch

    scaled = image.astype(np.float32)
    scaled /= 255.0
    return torch.from_numpy(scaled).permute(2, 0, 1).unsqueeze(0)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W), antialiased when shrinking."""
    import torch.nn.functional as F

    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def resize_gradients(gradients: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (B, 2, h, w) per-pixel gradients to (H, W), rescaling to the new pixel size."""
    h, w = gradients.shape[-2:]
    out = resize(gradients, size)
    scale = out.new_tensor([w / size[1], h / size[0]]).view(1, 2, 1, 1)
    return out * scale


def create_predictor(
    model: str,
    weights: str | Path | None = "default",
    *,
    device: str | torch.device,
    precision: str = "auto",
    fusion: FusionConfig | None = None,
    input_size: tuple[int, int] | None = None,
    max_depth: float | None = None,
) -> Predictor:
    """A Predictor for a registered model: weights loaded, how it runs resolved once.

    Args:
        model: registered name (``registry.list_models``).
        weights: as ``registry.create_model``: "default" (shipped), a checkpoint or export.
        device: "auto" | "cpu" | "cuda[:i]" | "mps" or a torch.device
            (``device.resolve_device``: an absent one is an error).
        precision: "auto" | "fp32" | "fp16" | "bf16" (``device.resolve_precision``).
        fusion: FusionConfig for the IRLS fusion, or None to skip it.
        input_size: (H, W) to run the network at instead of the weights' own.
        max_depth: a far limit to clip predictions at instead of the model's, when
            farther (an evaluation protocol's); see ``registry.resolve_inference``.

    Raises:
        UsageError: an unknown model or device, a bad input size or precision.
        WeightsError: weights that cannot be loaded.
    """
    from dpde_cli.device import resolve_device, resolve_precision
    from dpde_cli.registry import check_input_size, create_model

    size = check_input_size(input_size) if input_size else None  # before loading anything
    torch_device = resolve_device(device) if isinstance(device, str) else device
    dtype = resolve_precision(torch_device, precision)
    net = create_model(model, weights=weights)
    inference = resolve_inference(net, input_size=size, max_depth=max_depth)
    return Predictor(net, torch_device, dtype, fusion, inference=inference)


class Predictor:
    """Runs a registered model on batches of images, with fusion, on one device.

    Args:
        model: from ``registry.create_model`` (its ``spec``, the WeightsSpec, is kept as
            ``self.spec``).
        device: where to run (see ``device.resolve_device``).
        precision: autocast dtype (``device.resolve_precision``), None for fp32.
        fusion: FusionConfig for the IRLS fusion, or None to skip it.
        inference: input size, depth range and canonical focal length to run with
            (``self.inference``); None: the model's own (``registry.resolve_inference``).
    """

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        precision: torch.dtype | None = None,
        fusion: FusionConfig | None = None,
        inference: InferenceSpec | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.spec = model.spec
        self.inference = inference or resolve_inference(model)
        self.device = device
        self.precision = precision
        self.fusion = fusion

    def network_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """The size this model runs at for an image of (H, W)."""
        return inference_size(self.inference.input_size, image_size)

    def camera_scale(
        self, focal: Sequence[float] | None, full: tuple[int, int], net: tuple[int, int]
    ) -> torch.Tensor | None:
        """Per image, the factor that turns the network's depth into metres for its camera.

        A model with a ``canonical_focal`` predicts the depth a camera of that focal length
        (pixels at the network's grid) would see; a photo taken with focal length f (pixels
        at the network's grid) is then f / canonical_focal times as far. None for a model
        without one (its output is taken as metres whatever the camera).

        Args:
            focal: per image, fx in pixels of the full-resolution image (NaN or None: the
                default camera, ``dpde_cli.geometry.default_intrinsics``).
            full: (H, W) of the images.
            net: (h, w) the network runs at.

        Returns:
            (B, 1, 1, 1) float32 on the device, or None.
        """
        canonical = self.inference.canonical_focal
        if canonical is None:
            return None
        import torch

        from dpde_cli.geometry import default_intrinsics

        default = default_intrinsics(full[1], full[0]).fx
        values = [default if f is None or not math.isfinite(f) else float(f) for f in focal]
        scale = torch.tensor(values, dtype=torch.float32) * (net[1] / full[1]) / canonical
        return scale.view(-1, 1, 1, 1).to(self.device)

    def run_network(
        self, batch: torch.Tensor, flip: bool = False, scale: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Depth and gradients at the batch's own size.

        Args:
            batch: (B, 3, h, w) RGB in [0, 1] on the device.
            flip: average the depth with that of the mirrored image (test-time augmentation).
            scale: (B, 1, 1, 1) camera factors (``camera_scale``) applied to depth and
                gradients before the depth is clipped, or None.

        Returns:
            depth (B, 1, h, w) metres clipped to the depth range it runs with, and gradients
            (B, 2, h, w) metres per pixel.
        """
        import torch

        from dpde_cli.device import autocast

        with torch.no_grad(), autocast(self.device, self.precision):
            out = self.model(batch)
            depth = out.depth
            if flip:
                depth = 0.5 * (depth + self.model(batch.flip(-1)).depth.flip(-1))
        depth, gradients = depth.float(), out.gradients.float()
        if scale is not None:
            depth, gradients = depth * scale, gradients * scale
        low, high = self.inference.depth_range
        return depth.clamp_(low, high), gradients

    def fuse(self, depth: torch.Tensor, gradients: torch.Tensor) -> tuple[torch.Tensor, list]:
        """IRLS fusion of (B, 1, h, w) depth with (B, 2, h, w) gradients; returns stats too."""
        from dpde_cli.fusion import irls_fuse

        if self.device.type == "cuda":
            result = irls_fuse(depth, gradients[:, :1], gradients[:, 1:], config=self.fusion)
            return result.depth, [_fusion_stats(result, i) for i in range(depth.shape[0])]
        fused, stats = [], []
        for d, g in zip(depth.cpu().numpy(), gradients.cpu().numpy(), strict=True):
            result = irls_fuse(d[0], g[0], g[1], config=self.fusion)
            fused.append(result.depth)
            stats.append(_fusion_stats(result))
        import torch

        return torch.from_numpy(np.stack(fused)[:, None]).to(depth), stats

    def predict_tensor(
        self, batch: torch.Tensor, flip: bool = False, focal: Sequence[float] | None = None
    ) -> BatchPrediction:
        """Predict depth for a batch at its own (full) resolution.

        Args:
            batch: (B, 3, H, W) RGB in [0, 1], any device.
            flip: test-time augmentation: average the global depth with the mirrored image's.
            focal: per image, fx in pixels at (H, W), for models whose depth follows the
                camera (``camera_scale``); None or NaN: the default camera.

        Returns:
            A BatchPrediction at (H, W), on the predictor's device.
        """
        full = tuple(batch.shape[-2:])
        net = self.network_size(full)
        scale = self.camera_scale([None] * batch.shape[0] if focal is None else focal, full, net)
        depth, gradients = self.run_network(
            resize(batch.to(self.device), net), flip=flip, scale=scale
        )
        if self.fusion is not None:
            fused, stats = self.fuse(depth, gradients)
        else:
            fused, stats = depth, [None] * batch.shape[0]
        return BatchPrediction(
            depth=resize(fused, full),
            depth_unfused=resize(depth, full),
            gradients=resize_gradients(gradients, full),
            network_size=net,
            fusion=stats,
        )

    def predict_gradients(
        self, image: np.ndarray, size: tuple[int, int], focal: float | None = None
    ) -> np.ndarray:
        """The gradient network's (G_x, G_y) for a photo, resampled to another grid.

        Args:
            image: (H, W, 3) uint8 photo.
            size: (h, w) of the depth map the gradients are for (same aspect ratio).
            focal: fx of the photo in its pixels (see ``predict_tensor``), or None.

        Returns:
            (2, h, w) float32, metres per pixel of that grid.
        """
        batch = to_tensor(image).to(self.device)
        full = tuple(image.shape[:2])
        net = self.network_size(full)
        scale = self.camera_scale([focal], full, net)
        _, gradients = self.run_network(resize(batch, net), scale=scale)
        return resize_gradients(gradients, size)[0].cpu().numpy()

    def predict(
        self, images: list[np.ndarray], focals: Sequence[float | None] | None = None
    ) -> list[Prediction]:
        """Predict depth for images of one size: (H, W, 3) uint8 each.

        ``focals``: per image, fx in its pixels (see ``predict_tensor``), or None."""
        import torch

        start = time.perf_counter()
        if len({im.shape[:2] for im in images}) != 1:
            raise ValueError("predict() takes images of one size; group them first")
        out = self.predict_tensor(torch.cat([to_tensor(im) for im in images]), focal=focals)
        fused = out.depth.cpu().numpy()[:, 0]
        unfused = out.depth_unfused.cpu().numpy()[:, 0]
        gradients = out.gradients.cpu().numpy()
        seconds = (time.perf_counter() - start) / len(images)
        return [
            Prediction(fused[i], unfused[i], gradients[i], out.network_size, out.fusion[i], seconds)
            for i in range(len(images))
        ]


def _fusion_stats(result: Any, index: int = 0) -> dict[str, Any]:
    """The JSON-friendly summary of a FusionResult (image ``index`` of a batch)."""
    return {
        "irls_iterations": int(result.irls_iters),
        "cg_iterations": int(result.cg_iters),
        "objective": float(result.objectives[index]),
        "converged": bool(result.converged),
    }
