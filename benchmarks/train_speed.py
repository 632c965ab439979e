"""Training speed: images/s of a full train step for each model, and what an epoch costs.

For each model, the two stages of `dpde train` are timed as `dpde_cli.training` runs them:
stage 1 (encoder + decoder forward, BerHu + FSIM, backward, SGD step) and stage 2 (gradient
network, log-L1, backward, SGD step), at the training size (default 240 x 320, NYUv2's),
mixed precision and channels-last on CUDA (as `--amp`, `--channels-last`), fp32 on the CPU.
Inputs are random images with a plausible depth ramp, already on the device: data loading
is not included (the augmentation cost per image is printed separately; on CUDA use enough
`--workers` to cover it). From the rates follow the time of one NYUv2 epoch (795 images) per
stage and of the paper's recipe (30 epochs of each stage).

    python benchmarks/train_speed.py [--models dpde-lite dpde-r50] [--device cpu|cuda]
        [--batch 8] [--steps 10] [--warmup 2] [--size 240x320] [--threads N] [--no-amp]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime

import torch

NYU_TRAIN_IMAGES = 795
PAPER_EPOCHS = 30


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform's guess."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fake_batch(batch: int, size: tuple[int, int], device: torch.device):
    """Random images, a depth ramp (1-6 m) with a few invalid rows, and its mask."""
    height, width = size
    image = torch.rand(batch, 3, height, width, device=device)
    rows = torch.linspace(0, 1, height, device=device).view(1, 1, height, 1)
    depth = (1.0 + 5.0 * rows).expand(batch, 1, height, width).contiguous()
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :, :8] = False
    return image, depth * valid, valid


def time_stage(
    name: str,
    stage: str,
    device: torch.device,
    batch: int,
    size: tuple[int, int],
    steps: int,
    warmup: int,
    amp: bool,
) -> float:
    """Images per second of one training stage's step (forward, loss, backward, SGD)."""
    from dpde_cli.device import autocast, resolve_precision
    from dpde_cli.losses import GlobalDepthLoss, gradient_log_l1_loss
    from dpde_cli.registry import create_model

    model = create_model(name, weights=None).to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    dtype = resolve_precision(device, "auto" if amp else "fp32")
    scaler = torch.amp.GradScaler(device.type, enabled=cuda and dtype == torch.float16)
    if stage == "global":
        params = model.global_parameters()
        model.gradient_net.requires_grad_(False)
    else:
        params = list(model.gradient_net.parameters())
        model.encoder.requires_grad_(False)
        model.decoder.requires_grad_(False)
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=1e-4)
    criterion = GlobalDepthLoss()
    image, depth, valid = fake_batch(batch, size, device)
    if cuda:
        image = image.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with autocast(device, dtype):
            x = model.normalize(image)
            out = model.forward_depth(x) if stage == "global" else model.gradient_net(x)
        if stage == "global":
            loss, _ = criterion(out.float(), depth, valid)
        else:
            loss = gradient_log_l1_loss(out.float(), depth, valid)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def augment_ms(size: tuple[int, int], repeats: int = 20) -> float:
    """Milliseconds per image of the training augmentation (from a 480 x 640 frame)."""
    from dpde_cli.data.transforms import TrainTransform, sample_generator

    sample = {
        "image": torch.rand(3, 480, 640),
        "depth": torch.rand(1, 480, 640) * 5 + 0.5,
        "valid": torch.ones(1, 480, 640, dtype=torch.bool),
        "intrinsics": torch.tensor([518.9, 519.5, 325.6, 253.7]),
    }
    augment = TrainTransform(size)
    start = time.perf_counter()
    for i in range(repeats):
        augment(sample, sample_generator(0, 0, i))
    return 1000 * (time.perf_counter() - start) / repeats


def hours(seconds: float) -> str:
    """Seconds as a short h/min/s text."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def main() -> None:
    from dpde_cli.device import resolve_device
    from dpde_cli.registry import list_models

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list_models("dpde-[lr]*"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--size", default="240x320")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    size = tuple(int(v) for v in args.size.split("x"))
    amp = args.amp and device.type == "cuda"
    print(
        f"# train_speed  {datetime.now():%Y-%m-%d %H:%M}  torch {torch.__version__}  "
        f"cpu {cpu_name()} ({args.threads} threads, {os.cpu_count()} cores)"
    )
    if device.type == "cuda":
        print(f"# cuda: {torch.cuda.get_device_name(device)}")
    print(
        f"# device {device}, batch {args.batch}, {size[0]}x{size[1]}, {args.steps} timed steps "
        f"after {args.warmup} warm-up, amp {'on' if amp else 'off'}; data loading excluded"
    )
    print(
        f"# augmentation (480x640 -> {size[0]}x{size[1]}): {augment_ms(size):.1f} ms/image/worker"
    )
    print(
        "| model | stage 1 images/s | stage 2 images/s | NYUv2 epoch, stage 1 | "
        "NYUv2 epoch, stage 2 | 30 + 30 epochs |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.models:
        rates = [
            time_stage(name, stage, device, args.batch, size, args.steps, args.warmup, amp)
            for stage in ("global", "gradient")
        ]
        epochs = [NYU_TRAIN_IMAGES / rate for rate in rates]
        print(
            f"| {name} | {rates[0]:.2f} | {rates[1]:.2f} | {hours(epochs[0])} | "
            f"{hours(epochs[1])} | {hours(PAPER_EPOCHS * sum(epochs))} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
