"""One process against two: images/s of `dpde predict` on a batch of photos.

Three runs over the same photos, each process limited to one thread (OMP_NUM_THREADS=1,
MKL_NUM_THREADS=1; torchrun sets the same):

    1 process      dpde predict PHOTOS -o OUT
    torchrun x2    torchrun --standalone --nproc_per_node 2 -m dpde_cli predict PHOTOS -o OUT
    2 shards       dpde predict PHOTOS -o OUT --shard 1/2  &  ... --shard 2/2   (in parallel)

Each is timed end to end (start-up and model loading included: what a user waits for);
the ratios are images/s against the 1-process run measured in the same run. The outputs of
the three must be identical, byte for byte; the script says so or exits 1.

Photos: the first COUNT frames (sorted) of the 7-Scenes redkitchen set in
../shared/data/real-train/sevenscenes-redkitchen/rgb (640x480 JPEG) when present, else
COUNT crops of examples/room.jpg (stated in the output). The load average is printed
before and after: on a shared machine the figures are only as good as it is quiet.

    python benchmarks/scale_out.py [--count 100] [--model dpde-lite] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT.parent / "shared" / "data" / "real-train" / "sevenscenes-redkitchen" / "rgb"


def photos(folder: Path, count: int) -> str:
    """Put ``count`` photos in ``folder``; say where they came from."""
    from PIL import Image

    folder.mkdir(parents=True)
    frames = sorted(FRAMES.glob("*.jpg")) if FRAMES.is_dir() else []
    if len(frames) >= count:
        for frame in frames[:count]:
            shutil.copyfile(frame, folder / frame.name)
        return f"{count} real 640x480 frames of {FRAMES}"
    room = Image.open(ROOT / "examples" / "room.jpg").convert("RGB")
    width, height = room.size
    for index in range(count):  # crops of 90% of the photo, moved a little each time
        w, h = int(width * 0.9), int(height * 0.9)
        x, y = (index * 7) % (width - w), (index * 5) % (height - h)
        room.crop((x, y, x + w, y + h)).save(folder / f"room{index:03d}.jpg", quality=95)
    return f"{count} crops ({int(width * 0.9)}x{int(height * 0.9)}) of examples/room.jpg"


def run(commands: list[list[str]]) -> float:
    """Start the commands together, wait for all; seconds from the first start."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL) for c in commands]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - start
    if any(codes):
        sys.exit(f"a run failed (exit codes {codes}): {commands}")
    return seconds


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative name."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--model", default="dpde-lite")
    parser.add_argument("--keep", type=Path, help="Work here (kept) instead of a temporary dir.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="scale_out-"))
    source = photos(work / "photos", args.count)
    dpde = [sys.executable, "-m", "dpde_cli", "--device", "cpu", "-q"]
    predict = ["predict", str(work / "photos"), "--model", args.model]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    torchrun += ["--nproc_per_node", "2", "-m", "dpde_cli", "--device", "cpu", "-q"]
    runs = {
        "1 process": [[*dpde, *predict, "-o", str(work / "one")]],
        "torchrun x2": [[*torchrun, *predict, "-o", str(work / "torchrun")]],
        "2 shards": [
            [*dpde, *predict, "-o", str(work / "shards"), "--shard", f"{k}/2"] for k in (1, 2)
        ],
    }
    folders = {"1 process": "one", "torchrun x2": "torchrun", "2 shards": "shards"}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# scale_out: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"# {now}; photos: {source}; model {args.model}, fusion on, 1 thread per process")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    seconds = {name: run(commands) for name, commands in runs.items()}
    print(f"# load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    reference = args.count / seconds["1 process"]
    print("| run | seconds | images/s | vs 1 process |")
    print("|---|---:|---:|---:|")
    for name, value in seconds.items():
        rate = args.count / value
        print(f"| {name} | {value:.1f} | {rate:.2f} | {rate / reference:.2f}x |")
    made = {name: outputs(work / folder) for name, folder in folders.items()}
    one = made["1 process"]
    same = all(files == one for files in made.values()) and len(one) == args.count
    print(f"identical outputs: {'yes' if same else 'NO'} ({len(one)} depth maps each)")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
