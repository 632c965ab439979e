"""Speed of IRLS depth fusion (dpde_cli.fusion) beside naive sparse references.

For each image size: ms per fusion for the numpy path (float32 and float64), the torch path
on the CPU and, when present, on CUDA (one image, and a batch), next to the same IRLS
iteration done naively (scipy.sparse matrix assembled every step, solved by ``spsolve`` or
by Jacobi-preconditioned ``scipy.sparse.linalg.cg``), with the final objective of each.
``--preconditioners`` adds the measurements behind the choice of preconditioner: CG
iterations and time per IRLS system along a fixed IRLS trajectory (Jacobi, DCT Poisson,
incomplete Cholesky via ilupp, smoothed-aggregation multigrid via pyamg, when installed)
and whole fusions with each built-in preconditioner.

Inputs are realistic: ``--scene planes`` (default) is a piecewise-planar room (walls,
floor, boxes) built here; ``--scene rendered`` takes the depth of a procedural indoor
scene from dpde_cli.data.synthetic. The estimate is the truth blurred (sigma 3 px), with a
smooth 4 % scale error and 2 cm noise, like a network's output; the gradients are those of
the lightly blurred truth plus 3 mm/px noise.

    python benchmarks/fusion_speed.py [--sizes 240x320 480x640] [--repeats 7] [--batch 8]
        [--scene planes|rendered] [--no-direct] [--preconditioners] [--threads N]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter

from dpde_cli.fusion import (
    FusionConfig,
    fusion_objective,
    irls_fuse,
    numpy_irls,
    reference_irls_fuse,
)
from dpde_cli.geometry import spatial_gradients

EXACT = FusionConfig(dtype="float64", tol=1e-10, cg_tol=1e-6, cg_max_iters=100)


# ---- machine and inputs ------------------------------------------------------------


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor()."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line(torch: Any) -> str:
    """One line naming the machine, the libraries and the date."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [
        datetime.now().strftime("%Y-%m-%d %H:%M"),
        f"{cpu_name()}, {cores} cores",
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}",
    ]
    if torch is not None:
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} CPU threads)")
        if torch.cuda.is_available():
            parts.append(f"CUDA {torch.cuda.get_device_name()}")
    return "; ".join(parts)


def planes_depth(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A piecewise-planar room, metres (H, W): tilted back wall, floor, six boxes."""
    v, u = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    depth = 4.0 + 1.5 * (u - 0.5) + 0.5 * v
    depth = np.where(v > 0.6, 6.0 - 5.0 * (v - 0.6) + 0.3 * u, depth)
    for _ in range(6):
        x0, y0 = rng.uniform(0, 0.8, 2)
        bw, bh = rng.uniform(0.1, 0.3, 2)
        z0 = rng.uniform(1.5, 3.5)
        ax, ay = rng.uniform(-1, 1, 2)
        box = (u > x0) & (u < x0 + bw) & (v > y0) & (v < y0 + bh)
        depth = np.where(box, z0 + ax * (u - x0) + ay * (v - y0), depth)
    return depth


def rendered_depth(h: int, w: int, seed: int) -> np.ndarray:
    """Depth (H, W), metres, of a procedural indoor scene (dpde_cli.data.synthetic)."""
    from dpde_cli.data.synthetic import SceneConfig, render_scene

    cfg = SceneConfig(
        height=h, width=w, shadows=False, ambient_occlusion=False, sensor_effects=False
    )
    return render_scene(seed, cfg)["depth"][0].numpy().astype(np.float64)


def make_inputs(h: int, w: int, scene: str, seed: int) -> dict[str, np.ndarray]:
    """Ground truth and network-like fusion inputs (float32 (H, W) arrays, metres)."""
    rng = np.random.default_rng(seed)
    gt = planes_depth(h, w, rng) if scene == "planes" else rendered_depth(h, w, seed)
    scale = 1 + 0.04 * gaussian_filter(rng.standard_normal((h, w)), min(h, w) / 8) / 0.01
    est = gaussian_filter(gt, 3.0) * np.clip(scale, 0.9, 1.1)
    est += 0.02 * rng.standard_normal((h, w))
    gx, gy = spatial_gradients(gaussian_filter(gt, 0.7))
    gx += 0.003 * rng.standard_normal((h, w))
    gy += 0.003 * rng.standard_normal((h, w))
    return {
        k: v.astype(np.float32)
        for k, v in {"gt": gt, "depth": est, "grad_x": gx, "grad_y": gy}.items()
    }


# ---- timing ------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One timed path at one size."""

    path: str
    size: str
    ms: float
    ms_median: float
    irls: int
    cg: int
    objective: float
    mae: float


def timed(
    fn: Callable[[], Any], repeats: int, sync: Callable[[], None] = lambda: None
) -> tuple[float, float, Any]:
    """(min ms, median ms, last result) of ``repeats`` calls after one warm-up call."""
    out = fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), statistics.median(times), out


def as_numpy(x: Any) -> np.ndarray:
    """numpy array of a result depth (torch tensors are moved to the CPU)."""
    return x if isinstance(x, np.ndarray) else x.detach().cpu().double().numpy()


def score(inputs: dict[str, np.ndarray], depth: np.ndarray) -> tuple[float, float]:
    """(objective in float64, mean absolute error to the truth in metres) of a result."""
    args = (inputs["depth"], inputs["grad_x"], inputs["grad_y"])
    e = fusion_objective(depth.astype(np.float64), *(a.astype(np.float64) for a in args))
    return e, float(np.abs(depth - inputs["gt"]).mean())


def bench_size(h: int, w: int, args: argparse.Namespace, torch: Any) -> list[Row]:
    """Time every path at one size; returns the rows."""
    inputs = make_inputs(h, w, args.scene, args.seed)
    d, gx, gy = inputs["depth"], inputs["grad_x"], inputs["grad_y"]
    size = f"{h}x{w}"
    rows: list[Row] = []

    def add(
        path: str,
        fn: Callable[[], Any],
        repeats: int,
        sync: Callable[[], None] = lambda: None,
        per: int = 1,
    ) -> None:
        ms, med, res = timed(fn, repeats, sync)
        depth = as_numpy(res.depth)
        depth = depth.reshape(-1, h, w)[0]
        e, mae = score(inputs, depth)
        rows.append(Row(path, size, ms / per, med / per, res.irls_iters, res.cg_iters, e, mae))
        print(f"  {path:28s} {ms / per:10.1f} ms", file=sys.stderr, flush=True)

    print(f"{size}:", file=sys.stderr)
    add("numpy float32 (default)", lambda: irls_fuse(d, gx, gy), args.repeats)
    add(
        "numpy float64",
        lambda: irls_fuse(d, gx, gy, config=FusionConfig(dtype="float64")),
        args.repeats,
    )
    if torch is not None:
        tin = [torch.from_numpy(a)[None, None] for a in (d, gx, gy)]
        add("torch CPU float32", lambda: irls_fuse(*tin), args.repeats)
        if torch.cuda.is_available():
            sync = torch.cuda.synchronize
            cin = [a.cuda() for a in tin]
            add("torch CUDA float32", lambda: irls_fuse(*cin), args.repeats, sync)
            bin_ = [a.expand(args.batch, 1, h, w).contiguous() for a in cin]
            add(
                f"torch CUDA batch {args.batch} (per image)",
                lambda: irls_fuse(*bin_),
                args.repeats,
                sync,
                per=args.batch,
            )
    add(
        "reference Jacobi-CG (float64)",
        lambda: reference_irls_fuse(d, gx, gy, solver="jacobi-cg", cg_rtol=1e-6),
        1,
    )
    if not args.no_direct:
        add(
            "reference spsolve (float64)",
            lambda: reference_irls_fuse(d, gx, gy, solver="direct"),
            args.ref_repeats,
        )
    best = irls_fuse(d, gx, gy, config=EXACT)
    e_best, mae_best = score(inputs, best.depth)
    rows.append(
        Row(
            "converged optimum (float64)",
            size,
            float("nan"),
            float("nan"),
            best.irls_iters,
            best.cg_iters,
            e_best,
            mae_best,
        )
    )
    e_in, mae_in = score(inputs, d)
    rows.append(
        Row("input d_est (no fusion)", size, float("nan"), float("nan"), 0, 0, e_in, mae_in)
    )
    return rows


def print_table(rows: list[Row]) -> None:
    """The markdown table: times, ratios to the references, objectives."""
    print(
        "| path | size | ms / fusion (min) | median | IRLS | CG | objective E | "
        "E rel. to spsolve ref | E rel. to optimum | MAE to truth (m) | "
        "x faster than Jacobi-CG | x faster than spsolve |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in dict.fromkeys(r.size for r in rows):
        group = [r for r in rows if r.size == size]
        ref = {r.path.split()[1]: r for r in group if r.path.startswith("reference")}
        best = next(r for r in group if r.path.startswith("converged"))
        e_ref = ref["spsolve"].objective if "spsolve" in ref else float("nan")
        for r in group:
            timed_row = not np.isnan(r.ms)
            ratios = [
                f"{ref[k].ms / r.ms:.0f}" if timed_row and k in ref else ""
                for k in ("Jacobi-CG", "spsolve")
            ]
            cells = [
                r.path,
                size,
                _fmt(r.ms, ".1f"),
                _fmt(r.ms_median, ".1f"),
                str(r.irls),
                str(r.cg),
                f"{r.objective:.2f}",
                _fmt((r.objective - e_ref) / e_ref, "+.1e"),
                _fmt((r.objective - best.objective) / best.objective, "+.1e"),
                f"{r.mae:.4f}",
                *ratios,
            ]
            print("| " + " | ".join(cells) + " |")


def _fmt(value: float, spec: str) -> str:
    """A number formatted with ``spec``, or "-" for NaN."""
    return "-" if np.isnan(value) else format(value, spec)


# ---- preconditioner study ------------------------------------------------------------


def system_matrix(s: Any) -> sp.csr_matrix:
    """The IRLS matrix of a numpy_irls._NumpyIrls state as scipy.sparse CSR (n, n)."""
    n, w = s.wd.size, s.w
    diag = s.wd.astype(np.float64).copy()
    diag[:-1] += s.wx
    diag[1:] += s.wx
    diag[:-w] += s.wy
    diag[w:] += s.wy
    wx, wy = -s.wx.astype(np.float64), -s.wy.astype(np.float64)
    return sp.diags([wy, wx, diag, wx, wy], [-w, -1, 0, 1, w], shape=(n, n), format="csr")


def sparse_preconditioners() -> dict[str, Callable[[sp.csr_matrix], Callable]]:
    """Optional third-party preconditioners: name -> (A -> (r -> z)), those installed."""
    out: dict[str, Callable[[sp.csr_matrix], Callable]] = {}
    with contextlib.suppress(ImportError):
        import ilupp

        out["incomplete Cholesky IC(0) (ilupp)"] = lambda a: (
            ilupp.IChol0Preconditioner(a.tocsr()).dot
        )
    with contextlib.suppress(ImportError):
        import pyamg

        def amg(a: sp.csr_matrix) -> Callable:
            return pyamg.smoothed_aggregation_solver(a).aspreconditioner(cycle="V").matvec

        out["multigrid SA V-cycle (pyamg)"] = amg
    return out


def pcg_count(
    a: sp.csr_matrix,
    b: np.ndarray,
    x: np.ndarray,
    prec: Callable,
    reduce: float,
    maxit: int = 5000,
) -> int:
    """CG iterations to cut the residual norm by ``reduce`` from the warm start x.

    Dot products go through numpy_irls._dot (einsum), as in the solver: threaded BLAS dot
    products are erratic on a busy 2-core machine.
    """
    dot = numpy_irls._dot
    r = b - a @ x
    stop = reduce**2 * dot(r, r)
    z = prec(r)
    p, rz = z.copy(), dot(r, z)
    for k in range(1, maxit + 1):
        q = a @ p
        alpha = rz / dot(p, q)
        x = x + alpha * p
        r = r - alpha * q
        if dot(r, r) <= stop:
            return k
        z = prec(r)
        rz, rz_old = dot(r, z), rz
        p = z + (rz / rz_old) * p
    return maxit


def irls_states(inputs: dict[str, np.ndarray], steps: int) -> list[tuple[Any, np.ndarray]]:
    """(solver state holding the weights, iterate) of the first plain-IRLS systems.

    float64, exact solves from the solver's first iterate, no line search.
    """
    est, m, gx, gy = numpy_irls._prepare_numpy(
        inputs["depth"], inputs["grad_x"], inputs["grad_y"], None, np.dtype(np.float64)
    )
    first = numpy_irls._NumpyIrls(est, m, gx, gy, EXACT)
    first.set_weights(None)
    d = est.ravel().copy()
    first.pcg(d, first.rhs(np.empty_like(d)))
    out = []
    for _ in range(steps):
        s = numpy_irls._NumpyIrls(est, m, gx, gy, EXACT)
        s.evaluate(d, s.phi_cur)
        s.set_weights(s.phi_cur)
        out.append((s, d.copy()))
        s.pcg(d, s.rhs(np.empty_like(d)))
    return out


def per_system_study(inputs: dict[str, np.ndarray], steps: int = 6) -> None:
    """Table: setup ms, CG iterations and solve ms per IRLS system, per preconditioner."""
    states = irls_states(inputs, steps)
    builders: dict[str, Callable] = {
        "none": lambda s, a: lambda r: r,
        "Jacobi": _jacobi_builder,
        "DCT Poisson (a I + b L, mean weights)": _dct_builder,
    }
    builders |= {k: (lambda s, a, f=f: f(a)) for k, f in sparse_preconditioners().items()}
    print(
        "| preconditioner | CG iterations per IRLS system (residual / 1e3), steps 1.."
        f"{steps} | setup ms / system | solve ms / system |"
    )
    print("|---|---|---:|---:|")
    for name, build in builders.items():
        its, setup, solve = [], 0.0, 0.0
        for s, d in states:
            a = system_matrix(s)
            b = s.rhs(np.empty_like(d))
            t0 = time.perf_counter()
            prec = build(s, a)
            t1 = time.perf_counter()
            its.append(pcg_count(a, b, d.copy(), prec, 1e-3))
            setup += t1 - t0
            solve += time.perf_counter() - t1
        print(
            f"| {name} | {', '.join(map(str, its))} | {setup * 1e3 / steps:.1f} | "
            f"{solve * 1e3 / steps:.1f} |",
            flush=True,
        )


def _jacobi_builder(s: Any, a: sp.csr_matrix) -> Callable:
    """Diagonal (Jacobi) preconditioner of A."""
    inv = 1 / a.diagonal()
    return lambda r: r * inv


def _dct_builder(s: Any, a: sp.csr_matrix) -> Callable:
    """The solver's own DCT preconditioner for the weights held by state ``s``."""
    s._set_preconditioner()
    return s.prec


@contextlib.contextmanager
def sparse_preconditioner_in_solver(build: Callable) -> Iterator[None]:
    """Make irls_fuse's numpy path use ``build(A) -> (r -> z)`` as its preconditioner."""
    original = numpy_irls._NumpyIrls

    class Patched(original):  # type: ignore[misc, valid-type]
        def _set_preconditioner(self) -> None:
            dt = self.wd.dtype
            apply = build(system_matrix(self))
            self.prec = lambda r: apply(r.astype(np.float64)).astype(dt)

    numpy_irls._NumpyIrls = Patched
    try:
        yield
    finally:
        numpy_irls._NumpyIrls = original


def end_to_end_study(inputs: dict[str, np.ndarray], repeats: int) -> None:
    """Table: whole fusions (float32, default stopping rule) per preconditioner."""
    d, gx, gy = inputs["depth"], inputs["grad_x"], inputs["grad_y"]
    e_best = irls_fuse(d, gx, gy, config=EXACT).objective
    print(
        "| preconditioner | CG iterations / IRLS step (max) | ms / fusion (min) | IRLS | "
        "CG | E rel. to optimum |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    cases: list[tuple[str, str, int, int, Any]] = [  # label, kind, CG/step, repeats, ctx
        ("DCT Poisson (default)", "dct", 3, repeats, contextlib.nullcontext()),
        ("DCT Poisson", "dct", 5, repeats, contextlib.nullcontext()),
        ("Jacobi", "jacobi", 3, repeats, contextlib.nullcontext()),
        ("Jacobi", "jacobi", 10, repeats, contextlib.nullcontext()),
        ("Jacobi", "jacobi", 30, repeats, contextlib.nullcontext()),
        ("none", "none", 30, repeats, contextlib.nullcontext()),
    ]
    for name, build in sparse_preconditioners().items():
        cases.append((name, "none", 3, 1, sparse_preconditioner_in_solver(build)))
    for name, kind, k, reps, ctx in cases:
        cfg = FusionConfig(preconditioner=kind, cg_max_iters=k)
        with ctx:
            ms, _, res = timed(lambda cfg=cfg: irls_fuse(d, gx, gy, config=cfg), reps)
        e = fusion_objective(res.depth.astype(np.float64), d, gx, gy)
        print(
            f"| {name} | {k} | {ms:.1f} | {res.irls_iters} | {res.cg_iters} | "
            f"{(e - e_best) / e_best:+.1e} |",
            flush=True,
        )


# ---- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        nargs="+",
        default=["240x320", "480x640"],
        help="image sizes HxW (default: 240x320 480x640)",
    )
    p.add_argument("--repeats", type=int, default=7, help="timed calls per fast path")
    p.add_argument("--ref-repeats", type=int, default=1, help="timed calls per reference")
    p.add_argument("--batch", type=int, default=8, help="batch size for the CUDA batch row")
    p.add_argument("--scene", choices=["planes", "rendered"], default="planes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-direct", action="store_true", help="skip the spsolve reference")
    p.add_argument("--no-torch", action="store_true", help="skip the torch paths")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--preconditioners",
        action="store_true",
        help="also run the preconditioner study (largest size)",
    )
    p.add_argument("--study-only", action="store_true", help="run only that study")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print markdown tables to stdout."""
    args = parse_args(argv)
    torch = None
    if not args.no_torch:
        with contextlib.suppress(ImportError):
            import torch
        if torch is not None and args.threads:
            torch.set_num_threads(args.threads)
    print(f"Machine: {machine_line(torch)}\n")
    print(f"Scene: {args.scene} (seed {args.seed}); FusionConfig defaults {FusionConfig()}\n")
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    if not args.study_only:
        rows: list[Row] = []
        for h, w in sizes:
            rows += bench_size(h, w, args, torch)
        print_table(rows)
    if args.preconditioners or args.study_only:
        h, w = sizes[-1]
        inputs = make_inputs(h, w, args.scene, args.seed)
        print(
            f"\nPreconditioners at {h}x{w}, per IRLS system (float64, plain IRLS "
            "trajectory, warm start):\n"
        )
        per_system_study(inputs)
        print(f"\nPreconditioners at {h}x{w}, whole fusion (float32, defaults otherwise):\n")
        end_to_end_study(inputs, args.repeats)


if __name__ == "__main__":
    main()
