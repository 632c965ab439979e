"""Surface materials: one row of ``Scene.materials`` per surface (texture type, sRGB colours,
texture scales, gloss, emission), the palettes they are drawn from and a maker per kind."""

from __future__ import annotations

import numpy as np

from dpde_cli.data.synthetic._scene import (
    _CABINET,
    _FABRIC,
    _M_A,
    _M_B,
    _M_EMIT,
    _M_GLOSS,
    _M_OFF,
    _M_P1,
    _M_P2,
    _M_SCALE,
    _M_SCALE2,
    _M_TYPE,
    _MAT_COLS,
    _METAL,
    _PAINT,
    _PLASTIC,
    _WOOD,
)


def _mat(
    rng: np.random.Generator,
    kind: int,
    a: tuple[float, float, float] | np.ndarray,
    b: tuple[float, float, float] | np.ndarray | None = None,
    scale: float = 0.0,
    scale2: float = 0.0,
    gloss: float = 0.0,
    emit: float = 0.0,
    p1: float = 0.0,
    p2: float = 0.0,
) -> np.ndarray:
    """One material row; colours are sRGB in [0, 1]; the texture offset is random."""
    row = np.zeros(_MAT_COLS, np.float64)
    row[_M_TYPE] = kind
    row[_M_A : _M_A + 3] = np.clip(a, 0.0, 1.0)
    row[_M_B : _M_B + 3] = np.clip(a if b is None else b, 0.0, 1.0)
    row[_M_SCALE], row[_M_SCALE2] = scale, scale2
    row[_M_OFF : _M_OFF + 2] = rng.uniform(0.0, 40.0, 2)
    row[_M_GLOSS], row[_M_EMIT], row[_M_P1], row[_M_P2] = gloss, emit, p1, p2
    return row


def _jitter(rng: np.random.Generator, col: tuple[float, ...], amount: float = 0.06) -> np.ndarray:
    """A colour with random brightness and per-channel variation."""
    c = np.asarray(col) * rng.uniform(1.0 - amount * 2, 1.0 + amount * 2)
    return np.clip(c * (1.0 + rng.normal(0.0, amount, 3)), 0.0, 1.0)


_WALL_COLOURS = [
    (0.86, 0.84, 0.79),
    (0.88, 0.86, 0.82),
    (0.90, 0.86, 0.74),
    (0.80, 0.80, 0.78),
    (0.74, 0.79, 0.84),
    (0.77, 0.83, 0.72),
    (0.82, 0.74, 0.62),
    (0.91, 0.89, 0.86),
    (0.70, 0.68, 0.64),
    (0.62, 0.40, 0.33),
    (0.55, 0.62, 0.70),
    (0.86, 0.80, 0.66),
]

_WOODS = [
    ((0.72, 0.55, 0.36), (0.58, 0.41, 0.25)),
    ((0.44, 0.29, 0.18), (0.32, 0.20, 0.12)),
    ((0.56, 0.31, 0.20), (0.44, 0.22, 0.13)),
    ((0.82, 0.67, 0.47), (0.70, 0.53, 0.34)),
    ((0.27, 0.18, 0.12), (0.19, 0.12, 0.08)),
    ((0.62, 0.58, 0.52), (0.50, 0.46, 0.40)),
    ((0.78, 0.62, 0.44), (0.66, 0.49, 0.31)),
]

_FABRICS = [
    (0.50, 0.50, 0.50),
    (0.30, 0.30, 0.32),
    (0.70, 0.64, 0.54),
    (0.20, 0.24, 0.38),
    (0.24, 0.34, 0.26),
    (0.50, 0.18, 0.18),
    (0.45, 0.33, 0.24),
    (0.85, 0.84, 0.80),
    (0.62, 0.55, 0.70),
    (0.16, 0.16, 0.17),
    (0.35, 0.45, 0.55),
]

_PLASTICS = [
    (0.92, 0.92, 0.90),
    (0.10, 0.10, 0.11),
    (0.20, 0.35, 0.70),
    (0.75, 0.15, 0.12),
    (0.90, 0.75, 0.15),
    (0.20, 0.55, 0.30),
    (0.55, 0.56, 0.58),
    (0.85, 0.45, 0.15),
    (0.40, 0.60, 0.85),
    (0.80, 0.78, 0.72),
]

_CARPETS = [
    (0.45, 0.43, 0.40),
    (0.35, 0.36, 0.40),
    (0.55, 0.48, 0.38),
    (0.30, 0.32, 0.42),
    (0.52, 0.28, 0.24),
    (0.40, 0.44, 0.36),
    (0.62, 0.58, 0.52),
]


def _pick(rng: np.random.Generator, options: list) -> object:
    """A uniformly drawn element of a list."""
    return options[int(rng.integers(len(options)))]


def _paint(rng: np.random.Generator, col: tuple | None = None) -> np.ndarray:
    """Painted plaster."""
    col = _pick(rng, _WALL_COLOURS) if col is None else col
    return _mat(rng, _PAINT, _jitter(rng, col, 0.03), gloss=rng.uniform(0.0, 0.05))


def _wood(rng: np.random.Generator, planks: bool = False, pair=None, gloss=None) -> np.ndarray:
    """Wood with grain; with planks (floors) it has seams."""
    a, b = pair if pair is not None else _pick(rng, _WOODS)
    width = rng.uniform(0.09, 0.2) if planks else 0.0
    length = rng.uniform(0.9, 2.0) if planks else 0.0
    g = rng.uniform(0.05, 0.35) if gloss is None else gloss
    return _mat(
        rng, _WOOD, _jitter(rng, a), _jitter(rng, b), width, length, g, p1=float(rng.random() < 0.5)
    )


def _fabric(rng: np.random.Generator, col=None) -> np.ndarray:
    """Upholstery; sometimes striped."""
    a = _jitter(rng, _pick(rng, _FABRICS) if col is None else col)
    striped = rng.random() < 0.15
    b = _jitter(rng, _pick(rng, _FABRICS))
    return _mat(rng, _FABRIC, a, b, rng.uniform(0.03, 0.12), p1=float(striped))


def _plastic(rng: np.random.Generator, col=None, gloss=None) -> np.ndarray:
    """Plastic, laminate, enamel."""
    a = _jitter(rng, _pick(rng, _PLASTICS) if col is None else col)
    return _mat(rng, _PLASTIC, a, gloss=rng.uniform(0.1, 0.5) if gloss is None else gloss)


def _metal(rng: np.random.Generator, col=None) -> np.ndarray:
    """Brushed metal."""
    a = _jitter(rng, (0.6, 0.61, 0.62) if col is None else col)
    return _mat(rng, _METAL, a, gloss=rng.uniform(0.3, 0.8))


def _cabinet(rng: np.random.Generator, nx: int, ny: int, col=None, woody=None) -> np.ndarray:
    """Cabinet body whose front (local +y face) has nx door columns and ny drawer rows."""
    if woody is None:
        woody = rng.random() < 0.5
    if woody:
        base = _pick(rng, _WOODS)[0]
    else:
        base = (
            _pick(
                rng,
                [
                    (0.92, 0.91, 0.88),
                    (0.55, 0.55, 0.55),
                    (0.2, 0.2, 0.21),
                    (0.8, 0.76, 0.68),
                    (0.45, 0.55, 0.62),
                ],
            )
            if col is None
            else col
        )
    handle = _pick(rng, [(0.7, 0.7, 0.72), (0.15, 0.15, 0.15), (0.8, 0.7, 0.4)])
    return _mat(
        rng,
        _CABINET,
        _jitter(rng, base),
        _jitter(rng, handle),
        scale=float(woody),
        gloss=rng.uniform(0.05, 0.3),
        p1=nx,
        p2=ny,
    )
