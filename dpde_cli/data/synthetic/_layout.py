"""Sampling a scene on the CPU from a numpy Generator: room, materials, furniture, camera."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dpde_cli.data._common import scale_intrinsics
from dpde_cli.data.synthetic._scene import (
    _BOOKS,
    _CABINET,
    _CARPET,
    _CONCRETE,
    _FABRIC,
    _FOLIAGE,
    _LIGHT,
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
    _PICTURE,
    _PLASTIC,
    _SCREEN,
    _TILE,
    _WINDOW,
    _WOOD,
    NYU_INTRINSICS,
    NYU_SIZE,
    Scene,
    SceneConfig,
    SensorParams,
)

# Materials (sampled on the CPU)
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Scene building (CPU)
# --------------------------------------------------------------------------------------


@dataclass
class _Item:
    """A furniture item in its own frame: origin at the footprint centre on the floor, the
    front facing local +y, width along local x. Parts: boxes (x, y, z, hx, hy, hz, yaw, mat),
    cylinders (x, y, r, z0, z1, mat); supports: (x0, x1, y0, y1, z) for clutter."""

    w: float
    d: float
    h: float
    boxes: list = field(default_factory=list)
    cyls: list = field(default_factory=list)
    supports: list = field(default_factory=list)

    def block(self, x0, x1, y0, y1, z0, z1, mat, yaw=0.0) -> None:
        """Add a box given by its extents in the item frame."""
        self.boxes.append(
            (
                (x0 + x1) / 2,
                (y0 + y1) / 2,
                (z0 + z1) / 2,
                abs(x1 - x0) / 2,
                abs(y1 - y0) / 2,
                abs(z1 - z0) / 2,
                yaw,
                mat,
            )
        )

    def cyl(self, x, y, r, z0, z1, mat) -> None:
        """Add a vertical cylinder."""
        self.cyls.append((x, y, r, z0, z1, mat))

    def add(self, other: _Item, x: float, y: float, turned: bool = False) -> None:
        """Add another item's parts with its origin at (x, y), turned half round (to face
        local -y) when ``turned``. Its supports are not added."""
        k, turn = (-1.0, math.pi) if turned else (1.0, 0.0)
        for bx, by, bz, hx, hy, hz, yaw, mat in other.boxes:
            self.boxes.append((x + k * bx, y + k * by, bz, hx, hy, hz, yaw + turn, mat))
        for cx, cy, *rest in other.cyls:
            self.cyls.append((x + k * cx, y + k * cy, *rest))

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1): the floor rectangle its parts cover, turned boxes included."""
        xs, ys = [], []
        for x, y, _z, hx, hy, _hz, yaw, _mat in self.boxes:
            c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
            rx, ry = hx * c + hy * s, hx * s + hy * c
            xs += [x - rx, x + rx]
            ys += [y - ry, y + ry]
        for x, y, r, *_ in self.cyls:
            xs += [x - r, x + r]
            ys += [y - r, y + r]
        return min(xs), max(xs), min(ys), max(ys)

    def shift(self, dx: float, dy: float) -> None:
        """Move every part and support by (dx, dy) in the item frame (to centre the parts
        on the footprint)."""
        self.boxes = [(x + dx, y + dy, *rest) for x, y, *rest in self.boxes]
        self.cyls = [(x + dx, y + dy, *rest) for x, y, *rest in self.cyls]
        self.supports = [
            (x0 + dx, x1 + dx, y0 + dy, y1 + dy, z) for x0, x1, y0, y1, z in self.supports
        ]


class _Builder:
    """Accumulates the primitives, materials and lights of one scene."""

    def __init__(self, rng: np.random.Generator, room: np.ndarray) -> None:
        self.rng = rng
        self.room = room
        self.boxes: list[tuple] = []
        self.box_mats: list[np.ndarray] = []
        self.box_casts: list[bool] = []
        self.cyls: list[tuple] = []
        self.cyl_mats: list[np.ndarray] = []
        self.cyl_casts: list[bool] = []
        self.lights: list[np.ndarray] = []
        self.occupied: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1
        self.wall_spans: list[list[tuple[float, float, float, float]]] = [[], [], [], []]
        self.supports: list[tuple] = []  # (support, x, y, yaw, where its clutter row ends)
        self.annex = np.zeros(11)

    def box(self, c, h, yaw, mat, casts=True) -> None:
        """Add a box by centre and half extents (world)."""
        self.boxes.append((*c, *h, yaw))
        self.box_mats.append(mat)
        self.box_casts.append(casts)

    def cyl(self, x, y, r, z0, z1, mat, casts=True) -> None:
        """Add a vertical cylinder (world)."""
        self.cyls.append((x, y, r, z0, z1))
        self.cyl_mats.append(mat)
        self.cyl_casts.append(casts)

    def light(self, pos, rgb, direction=(0.0, 0.0, -1.0), exponent=0.0, radius=0.1) -> None:
        """Add a light: power rgb (irradiance at 1 m), a cosine lobe and a disc radius."""
        self.lights.append(np.array([*pos, *rgb, *direction, exponent, radius], np.float64))

    def free(self, rect: tuple[float, float, float, float], margin: float = 0.05) -> bool:
        """Whether an axis-aligned floor rectangle is inside the room and unoccupied."""
        x0, y0, x1, y1 = rect
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.room[0] + 1e-6 or y1 > self.room[1] + 1e-6:
            return False
        for a0, b0, a1, b1 in self.occupied:
            if x0 < a1 + margin and a0 < x1 + margin and y0 < b1 + margin and b0 < y1 + margin:
                return False
        return True

    def wall_free(self, wall: int, s0: float, s1: float, z0: float, z1: float) -> bool:
        """Whether the span [s0, s1] x [z0, z1] of a wall (along it, height) is clear of the
        doors, windows, furniture and pictures recorded on it."""
        return not any(
            s0 < e1 and e0 < s1 and z0 < t1 and t0 < z1 for e0, e1, t0, t1 in self.wall_spans[wall]
        )

    def place(self, item: _Item, x: float, y: float, yaw: float, casts=True) -> None:
        """Add an item's parts at (x, y) with a yaw, and record its footprint."""
        c, s = math.cos(yaw), math.sin(yaw)
        for bx, by, bz, hx, hy, hz, byaw, mat in item.boxes:
            self.box(
                (x + c * bx - s * by, y + s * bx + c * by, bz), (hx, hy, hz), yaw + byaw, mat, casts
            )
        for cx, cy, r, z0, z1, mat in item.cyls:
            self.cyl(x + c * cx - s * cy, y + s * cx + c * cy, r, z0, z1, mat, casts)
        self.occupied.append(_footprint(item, x, y, yaw))
        for sup in item.supports:
            self.supports.append((sup, x, y, yaw, _clutter(self, sup, x, y, yaw)))


def _footprint(item: _Item, x: float, y: float, yaw: float) -> tuple[float, float, float, float]:
    """Axis-aligned floor rectangle (x0, y0, x1, y1) covering a yawed item."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    ex, ey = c * item.w / 2 + s * item.d / 2, s * item.w / 2 + c * item.d / 2
    return (x - ex, y - ey, x + ex, y + ey)


def _clutter(
    b: _Builder,
    sup: tuple,
    x: float,
    y: float,
    yaw: float,
    rng: np.random.Generator | None = None,
    cursor: float | None = None,
    count: int | None = None,
) -> float:
    """Small objects (books, mugs, bottles, boxes, a laptop, a plant) in a row along a
    support rectangle; returns where the row ends (local x).

    ``rng`` defaults to the scene's; ``cursor`` (where the row starts) and ``count`` (how
    many objects at most) are drawn when not given.
    """
    rng = b.rng if rng is None else rng
    x0, x1, y0, y1, z = sup
    c, s = math.cos(yaw), math.sin(yaw)

    def to_world(px: float, py: float) -> tuple[float, float]:
        return x + c * px - s * py, y + s * px + c * py

    n = int(rng.integers(0, 5)) if count is None else count
    cursor = x0 + rng.uniform(0.0, 0.15) if cursor is None else cursor
    for _ in range(n):
        kind = rng.choice(
            ["books", "mug", "bottle", "box", "laptop", "plant", "lamp"],
            p=[0.25, 0.15, 0.15, 0.2, 0.1, 0.08, 0.07],
        )
        size = {
            "books": 0.22,
            "mug": 0.09,
            "bottle": 0.08,
            "box": 0.3,
            "laptop": 0.34,
            "plant": 0.2,
            "lamp": 0.2,
        }[kind]
        if cursor + size > x1 or y1 - y0 < 0.12:
            break
        px = cursor + size / 2
        depth_room = max(y1 - y0 - size, 0.0)
        py = y0 + size / 2 + rng.uniform(0.0, depth_room) if y1 - y0 > size else (y0 + y1) / 2
        wx, wy = to_world(px, py)
        if kind == "books":
            h = rng.uniform(0.04, 0.16)
            b.box(
                (wx, wy, z + h / 2),
                (rng.uniform(0.08, 0.12), rng.uniform(0.1, 0.15), h / 2),
                yaw + rng.normal(0, 0.3),
                _mat(rng, _BOOKS, (0.5, 0.5, 0.5)),
            )
        elif kind == "mug":
            b.cyl(
                wx,
                wy,
                rng.uniform(0.035, 0.05),
                z,
                z + rng.uniform(0.08, 0.12),
                _plastic(rng, gloss=0.4),
            )
        elif kind == "bottle":
            h = rng.uniform(0.18, 0.32)
            m = _plastic(rng, _pick(rng, [(0.2, 0.5, 0.3), (0.6, 0.75, 0.85), (0.35, 0.2, 0.1)]))
            r = rng.uniform(0.03, 0.045)
            b.cyl(wx, wy, r, z, z + h * 0.7, m)
            b.cyl(wx, wy, r * 0.4, z + h * 0.7, z + h, m)
        elif kind == "box":
            hx, hy, hz = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.12), rng.uniform(0.03, 0.15)
            col = _pick(rng, [(0.62, 0.48, 0.32), (0.9, 0.9, 0.88), *_PLASTICS])
            b.box((wx, wy, z + hz), (hx, hy, hz), yaw + rng.normal(0, 0.4), _plastic(rng, col))
        elif kind == "laptop":
            body = _plastic(rng, _pick(rng, [(0.6, 0.6, 0.62), (0.12, 0.12, 0.13)]), 0.3)
            b.box((wx, wy, z + 0.01), (0.16, 0.11, 0.01), yaw, body)
            sx, sy = to_world(px, py - 0.11)
            b.box(
                (sx, sy, z + 0.13),
                (0.16, 0.006, 0.11),
                yaw,
                _mat(
                    rng,
                    _SCREEN,
                    (0.04, 0.04, 0.05),
                    gloss=0.6,
                    p1=float(rng.random() < 0.5),
                    emit=1.2,
                ),
            )
        elif kind == "plant":
            pot = _plastic(rng, _pick(rng, [(0.65, 0.35, 0.2), (0.9, 0.9, 0.88), (0.2, 0.2, 0.2)]))
            b.cyl(wx, wy, 0.07, z, z + 0.12, pot)
            b.cyl(
                wx,
                wy,
                rng.uniform(0.08, 0.12),
                z + 0.12,
                z + rng.uniform(0.25, 0.4),
                _mat(rng, _FOLIAGE, _jitter(rng, (0.5, 0.7, 0.4), 0.1)),
            )
        else:  # lamp
            b.cyl(wx, wy, 0.07, z, z + 0.02, _metal(rng))
            b.cyl(wx, wy, 0.012, z + 0.02, z + 0.3, _metal(rng))
            b.cyl(wx, wy, 0.1, z + 0.28, z + 0.45, _fabric(rng, (0.9, 0.86, 0.75)))
        cursor += size + rng.uniform(0.03, 0.3)
    return cursor


# ---- furniture templates: each returns an _Item ----


def _legs(item: _Item, w: float, d: float, z1: float, mat: np.ndarray, t: float, round_: bool):
    """Four legs at the corners of a w x d rectangle, up to height z1."""
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - t), sy * (d / 2 - t)
            if round_:
                item.cyl(x, y, t * 0.6, 0.0, z1, mat)
            else:
                item.block(x - t / 2, x + t / 2, y - t / 2, y + t / 2, 0.0, z1, mat)


def _table(rng: np.random.Generator, style: dict, low: bool = False, desk: bool = False) -> _Item:
    """Table, coffee table or desk: a top on four legs (desks: sometimes a drawer unit)."""
    if low:
        w, d, h = rng.uniform(0.8, 1.3), rng.uniform(0.45, 0.7), rng.uniform(0.38, 0.5)
    elif desk:
        w, d, h = rng.uniform(1.0, 1.8), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.77)
    else:
        w, d, h = rng.uniform(0.8, 1.9), rng.uniform(0.7, 1.0), rng.uniform(0.72, 0.78)
    item = _Item(w, d, h)
    top_mat = style["wood"] if rng.random() < 0.65 else _plastic(rng, gloss=0.2)
    th = rng.uniform(0.025, 0.05)
    item.block(-w / 2, w / 2, -d / 2, d / 2, h - th, h, top_mat)
    leg_mat = style["wood"] if rng.random() < 0.5 else _metal(rng, (0.2, 0.2, 0.2))
    _legs(item, w, d, h - th, leg_mat, rng.uniform(0.035, 0.06), rng.random() < 0.3)
    if desk and rng.random() < 0.5:
        dw = rng.uniform(0.35, 0.45)
        x0 = w / 2 - dw - 0.02 if rng.random() < 0.5 else -w / 2 + 0.02
        item.block(
            x0,
            x0 + dw,
            -d / 2 + 0.04,
            d / 2 - 0.04,
            0.02,
            h - th,
            _cabinet(rng, 1, int(rng.integers(2, 4))),
        )
    item.supports.append((-w / 2 + 0.05, w / 2 - 0.05, -d / 2 + 0.05, d / 2 - 0.05, h))
    if desk and rng.random() < 0.5:  # a monitor
        mw = rng.uniform(0.22, 0.3)
        item.block(
            -mw,
            mw,
            -d / 2 + 0.12,
            -d / 2 + 0.14,
            h + 0.1,
            h + 0.1 + mw * 1.2,
            _mat(
                rng, _SCREEN, (0.04, 0.04, 0.05), gloss=0.6, p1=float(rng.random() < 0.6), emit=1.0
            ),
        )
        item.block(-0.02, 0.02, -d / 2 + 0.1, -d / 2 + 0.14, h, h + 0.12, _plastic(rng, (0.1,) * 3))
    return item


def _chair(rng: np.random.Generator, style: dict, office: bool = False) -> _Item:
    """Four-legged or office chair facing local +y."""
    sw, sd = rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.48)
    sh = rng.uniform(0.43, 0.49)
    item = _Item(sw + 0.1, sd + 0.1, sh + 0.45)
    seat = _fabric(rng) if (office or rng.random() < 0.4) else style["wood"]
    frame = style["wood"] if rng.random() < 0.6 and not office else _metal(rng, (0.15,) * 3)
    st = rng.uniform(0.04, 0.08)
    item.block(-sw / 2, sw / 2, -sd / 2, sd / 2, sh - st, sh, seat)
    back_h = rng.uniform(0.35, 0.55)
    item.block(-sw / 2, sw / 2, -sd / 2, -sd / 2 + 0.04, sh, sh + back_h, seat)
    if office:
        item.cyl(0.0, 0.0, 0.025, 0.08, sh - st, frame)
        for k in range(5):
            a = 2 * math.pi * k / 5 + rng.uniform(0, 0.5)
            item.boxes.append(
                (0.15 * math.cos(a), 0.15 * math.sin(a), 0.06, 0.15, 0.02, 0.02, a, frame)
            )
    else:
        _legs(item, sw, sd, sh - st, frame, rng.uniform(0.025, 0.04), rng.random() < 0.3)
    return item


def _bed(rng: np.random.Generator, style: dict) -> _Item:
    """Bed with the headboard at local -y (against a wall) and the foot facing +y."""
    w = rng.choice([0.9, 1.2, 1.4, 1.6, 1.8]) + rng.uniform(0.0, 0.1)
    length = rng.uniform(1.95, 2.15)
    item = _Item(w + 0.06, length + 0.05, 1.0)
    base_h, top_h = rng.uniform(0.2, 0.35), rng.uniform(0.45, 0.62)
    frame = style["wood"] if rng.random() < 0.7 else _fabric(rng)
    item.block(-w / 2, w / 2, -length / 2, length / 2, 0.0, base_h, frame)
    sheet = _fabric(rng, (0.9, 0.89, 0.86) if rng.random() < 0.5 else None)
    item.block(
        -w / 2 + 0.02, w / 2 - 0.02, -length / 2 + 0.05, length / 2 - 0.02, base_h, top_h, sheet
    )
    cover = _fabric(rng)
    cy0 = -length / 2 + rng.uniform(0.5, 0.8)
    item.block(-w / 2 - 0.01, w / 2 + 0.01, cy0, length / 2, top_h - 0.08, top_h + 0.04, cover)
    hb_h = rng.uniform(0.85, 1.25)
    item.block(-w / 2 - 0.03, w / 2 + 0.03, -length / 2 - 0.05, -length / 2, 0.0, hb_h, frame)
    n_p = 1 if w < 1.3 else 2
    pillow = _fabric(rng, (0.92, 0.92, 0.9) if rng.random() < 0.6 else None)
    for k in range(n_p):
        px = (k + 0.5) / n_p * w - w / 2
        pw = w / n_p / 2 - 0.05
        item.block(
            px - pw, px + pw, -length / 2 + 0.08, -length / 2 + 0.42, top_h, top_h + 0.12, pillow
        )
    return item


def _cabinet_item(rng: np.random.Generator, style: dict, tall: bool | None = None) -> _Item:
    """Wardrobe, dresser, filing cabinet or nightstand: a box with doors/drawers in front."""
    if tall is None:
        tall = rng.random() < 0.45
    if tall:
        w, d, h = rng.uniform(0.5, 1.4), rng.uniform(0.4, 0.62), rng.uniform(1.6, 2.2)
        nx, ny = int(rng.integers(1, 4)), int(rng.choice([1, 1, 2]))
    else:
        w, d, h = rng.uniform(0.4, 1.4), rng.uniform(0.35, 0.55), rng.uniform(0.5, 1.05)
        nx, ny = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    item = _Item(w, d, h)
    woody = rng.random() < 0.5
    mat = _cabinet(rng, nx, ny, woody=woody)
    item.block(-w / 2, w / 2, -d / 2, d / 2, 0.0, h, mat)
    if not tall:
        item.supports.append((-w / 2 + 0.03, w / 2 - 0.03, -d / 2 + 0.03, d / 2 - 0.03, h))
    return item


def _shelf(rng: np.random.Generator, style: dict) -> _Item:
    """Open bookcase: sides, back, shelves, with a row of books (or boxes) on each shelf."""
    w, d, h = rng.uniform(0.6, 1.3), rng.uniform(0.25, 0.4), rng.uniform(0.9, 2.1)
    item = _Item(w, d, h)
    mat = style["wood"] if rng.random() < 0.6 else _plastic(rng, (0.9, 0.9, 0.88), 0.1)
    t = 0.02
    item.block(-w / 2, -w / 2 + t, -d / 2, d / 2, 0.0, h, mat)
    item.block(w / 2 - t, w / 2, -d / 2, d / 2, 0.0, h, mat)
    item.block(-w / 2, w / 2, -d / 2, -d / 2 + 0.01, 0.0, h, mat)
    n = max(2, round(h / rng.uniform(0.3, 0.4)))
    for k in range(n + 1):
        z = k * (h - t) / n
        item.block(-w / 2 + t, w / 2 - t, -d / 2, d / 2, z, z + t, mat)
        if k < n and rng.random() < 0.8:
            gap = (h - t) / n - t
            fill = rng.uniform(0.3, 1.0) * (w - 2 * t)
            x0 = -w / 2 + t + rng.uniform(0.0, w - 2 * t - fill)
            item.block(
                x0,
                x0 + fill,
                -d / 2 + 0.02,
                d / 2 - rng.uniform(0.02, 0.08),
                z + t,
                z + t + gap * rng.uniform(0.7, 0.92),
                _mat(rng, _BOOKS, (0.5, 0.5, 0.5)),
            )
    if h < 1.3:
        item.supports.append((-w / 2 + 0.03, w / 2 - 0.03, -d / 2 + 0.03, d / 2 - 0.03, h))
    return item


def _sofa(rng: np.random.Generator, style: dict) -> _Item:
    """Sofa or armchair facing local +y."""
    seats = int(rng.choice([1, 2, 3, 3]))
    w = seats * rng.uniform(0.55, 0.7) + 0.4
    d, h = rng.uniform(0.8, 0.98), rng.uniform(0.75, 0.92)
    item = _Item(w, d, h)
    mat = _fabric(rng)
    sh = rng.uniform(0.4, 0.46)
    item.block(-w / 2, w / 2, -d / 2, d / 2, 0.05, sh - 0.1, mat)
    item.block(-w / 2, w / 2, -d / 2, -d / 2 + 0.2, sh - 0.1, h, mat)
    arm_h = rng.uniform(0.55, 0.65)
    item.block(-w / 2, -w / 2 + 0.18, -d / 2 + 0.2, d / 2, sh - 0.1, arm_h, mat)
    item.block(w / 2 - 0.18, w / 2, -d / 2 + 0.2, d / 2, sh - 0.1, arm_h, mat)
    cw = (w - 0.36) / seats
    for k in range(seats):
        x0 = -w / 2 + 0.18 + k * cw
        item.block(x0 + 0.005, x0 + cw - 0.005, -d / 2 + 0.2, d / 2, sh - 0.1, sh, mat)
    _legs(item, w, d, 0.05, _metal(rng, (0.15,) * 3), 0.04, False)
    return item


def _tv_stand(rng: np.random.Generator, style: dict) -> _Item:
    """Low cabinet with a television on it."""
    item = _cabinet_item(rng, style, tall=False)
    item.supports.clear()
    tw = min(item.w * 0.45, rng.uniform(0.45, 0.75))
    th = tw * 0.6
    z = item.h
    item.block(-0.12, 0.12, -0.06, 0.06, z, z + 0.02, _plastic(rng, (0.1,) * 3))
    item.block(
        -tw,
        tw,
        -0.03,
        0.0,
        z + 0.06,
        z + 0.06 + th * 2,
        _mat(rng, _SCREEN, (0.03, 0.03, 0.035), gloss=0.7, p1=float(rng.random() < 0.3), emit=1.0),
    )
    return item


def _storage_stack(rng: np.random.Generator, style: dict) -> _Item:
    """Stacked plastic boxes or cardboard boxes."""
    w, d = rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.45)
    n = int(rng.integers(1, 4))
    z = 0.0
    item = _Item(w, d, 0.0)
    for _ in range(n):
        hz = rng.uniform(0.2, 0.35)
        col = _pick(rng, [(0.62, 0.48, 0.32), (0.25, 0.4, 0.75), (0.85, 0.85, 0.85)])
        item.block(-w / 2, w / 2, -d / 2, d / 2, z, z + hz, _plastic(rng, col, 0.15))
        z += hz
    item.h = z
    return item


def _plant(rng: np.random.Generator, style: dict) -> _Item:
    """A potted plant on the floor (crude: pot plus a foliage cylinder)."""
    r = rng.uniform(0.12, 0.2)
    item = _Item(2 * r + 0.2, 2 * r + 0.2, 1.0)
    item.cyl(0.0, 0.0, r, 0.0, r * 1.8, _plastic(rng, (0.65, 0.35, 0.2)))
    top = r * 1.8 + rng.uniform(0.4, 1.1)
    item.cyl(0.0, 0.0, 0.015, r * 1.8, top - 0.1, _wood(rng))
    _foliage(rng, item, 0.0, 0.0, r * 1.8 + 0.1, top, r + 0.15)
    return item


def _foliage(rng: np.random.Generator, item: _Item, x: float, y: float, z0: float, z1: float,
             spread: float) -> None:  # fmt: skip
    """A bushy clump of small, randomly turned leaf boxes between heights z0 and z1."""
    leaves = _mat(rng, _FOLIAGE, _jitter(rng, (0.5, 0.7, 0.4), 0.1))
    n = int(rng.integers(6, 11))
    for k in range(n):
        zc = z0 + (z1 - z0) * (k + rng.uniform(0.2, 0.8)) / n
        reach = spread * (0.4 + 0.6 * math.sin(math.pi * (zc - z0) / max(z1 - z0, 1e-3)))
        dx, dy = rng.uniform(-reach, reach, 2)
        hx, hy, hz = rng.uniform(0.05, 0.18), rng.uniform(0.03, 0.12), rng.uniform(0.04, 0.12)
        item.boxes.append((x + dx, y + dy, zc, hx, hy, hz, rng.uniform(-math.pi, math.pi), leaves))


def _floor_lamp(rng: np.random.Generator, style: dict) -> _Item:
    """Floor lamp: base, pole, shade."""
    item = _Item(0.4, 0.4, 1.6)
    m = _metal(rng, (0.2, 0.2, 0.2) if rng.random() < 0.5 else None)
    item.cyl(0.0, 0.0, 0.15, 0.0, 0.03, m)
    h = rng.uniform(1.4, 1.75)
    item.cyl(0.0, 0.0, 0.015, 0.03, h - 0.2, m)
    item.cyl(0.0, 0.0, rng.uniform(0.16, 0.24), h - 0.3, h, _fabric(rng, (0.9, 0.86, 0.74)))
    return item


def _fridge(rng: np.random.Generator, style: dict) -> _Item:
    """Fridge: a tall white or steel box with two doors."""
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.72), rng.uniform(1.5, 1.9)
    item = _Item(w, d, h)
    col = (0.93, 0.93, 0.92) if rng.random() < 0.5 else (0.7, 0.71, 0.72)
    item.block(-w / 2, w / 2, -d / 2, d / 2, 0.0, h, _cabinet(rng, 1, 2, col=col, woody=False))
    return item


def _counter_run(rng: np.random.Generator, style: dict, length: float) -> _Item:
    """Kitchen counter along a wall: base cabinets, a worktop and sometimes wall cabinets."""
    d, h = rng.uniform(0.58, 0.65), rng.uniform(0.88, 0.94)
    item = _Item(length, d, h)
    n = max(1, round(length / 0.6))
    col = _pick(rng, [(0.93, 0.92, 0.9), (0.7, 0.72, 0.74), (0.35, 0.38, 0.42)])
    woody = rng.random() < 0.4
    body = _cabinet(rng, n, 1, col=col, woody=woody)
    item.block(-length / 2, length / 2, -d / 2, d / 2 - 0.03, 0.1, h - 0.04, body)
    item.block(-length / 2, length / 2, -d / 2, d / 2 - 0.08, 0.0, 0.1, _plastic(rng, (0.2,) * 3))
    top = _pick(rng, [(0.85, 0.84, 0.8), (0.2, 0.2, 0.2), (0.55, 0.5, 0.45)])
    item.block(
        -length / 2,
        length / 2,
        -d / 2,
        d / 2,
        h - 0.04,
        h,
        _mat(rng, _CONCRETE, _jitter(rng, top), _jitter(rng, top, 0.1), gloss=0.4),
    )
    if rng.random() < 0.7:
        z0 = h + rng.uniform(0.5, 0.65)
        item.block(
            -length / 2,
            length / 2,
            -d / 2,
            -d / 2 + 0.35,
            z0,
            z0 + rng.uniform(0.6, 0.8),
            _cabinet(rng, n, 1, col=col, woody=woody),
        )
    item.supports.append((-length / 2 + 0.05, length / 2 - 0.05, -d / 2 + 0.05, d / 2 - 0.1, h))
    return item


def _pole(rng: np.random.Generator, style: dict) -> _Item:
    """A floor-to-ceiling column (basements, offices)."""
    r = rng.uniform(0.05, 0.15)
    item = _Item(2 * r, 2 * r, 3.5)
    m = _metal(rng, (0.25, 0.25, 0.27)) if rng.random() < 0.5 else _paint(rng)
    item.cyl(0.0, 0.0, r, 0.0, 3.5, m)
    return item


# Room types: floor/wall/ceiling choices and weighted furniture.
_ROOM_TYPES = {
    "living": {
        "p": 0.2,
        "items": {
            "sofa": 3,
            "low_table": 2,
            "tv": 2,
            "shelf": 2,
            "cabinet": 1,
            "plant": 1,
            "lamp": 1,
            "chair": 1,
        },
    },
    "bedroom": {
        "p": 0.2,
        "items": {
            "bed": 0,
            "cabinet": 3,
            "desk": 1.5,
            "shelf": 1,
            "lamp": 0.5,
            "plant": 0.5,
            "chair": 0.5,
        },
    },
    "office": {
        "p": 0.15,
        "items": {"desk": 4, "cabinet": 2, "shelf": 1.5, "storage": 1, "plant": 0.5, "table": 0.5},
    },
    "kitchen": {
        "p": 0.15,
        "items": {"counter": 0, "table": 2, "fridge": 1, "cabinet": 1, "chair": 0.5},
    },
    "dining": {"p": 0.1, "items": {"table": 3, "cabinet": 2, "shelf": 1, "plant": 1}},
    "basement": {
        "p": 0.1,
        "items": {"shelf": 3, "storage": 3, "table": 1.5, "cabinet": 1, "pole": 1, "chair": 0.5},
    },
    "study": {"p": 0.1, "items": {"table": 3, "desk": 2, "shelf": 1.5, "cabinet": 1}},
}

_TEMPLATES = {
    "sofa": _sofa,
    "low_table": lambda rng, st: _table(rng, st, low=True),
    "table": _table,
    "desk": lambda rng, st: _table(rng, st, desk=True),
    "tv": _tv_stand,
    "shelf": _shelf,
    "cabinet": _cabinet_item,
    "plant": _plant,
    "lamp": _floor_lamp,
    "chair": _chair,
    "bed": _bed,
    "storage": _storage_stack,
    "fridge": _fridge,
    "pole": _pole,
}
_UNIQUE_ITEMS = {"bed", "tv", "fridge", "counter"}
_CENTRE_ITEMS = {"low_table", "table", "chair", "pole", "storage", "plant", "lamp"}
_WALL_ITEMS = {
    "sofa",
    "tv",
    "shelf",
    "cabinet",
    "bed",
    "desk",
    "fridge",
    "storage",
    "plant",
    "lamp",
    "table",
}


def _room_surfaces(rng: np.random.Generator, kind: str) -> list[np.ndarray]:
    """Materials of floor, ceiling and the four walls for a room type."""
    if kind == "basement":
        floor_kind = _pick(rng, ["concrete", "concrete", "tile", "carpet"])
    elif kind in ("office", "study"):
        floor_kind = _pick(rng, ["carpet", "carpet", "tile", "wood"])
    elif kind == "kitchen":
        floor_kind = _pick(rng, ["tile", "tile", "wood"])
    else:
        floor_kind = _pick(rng, ["wood", "wood", "carpet", "tile"])
    if floor_kind == "wood":
        floor = _wood(rng, planks=True, gloss=rng.uniform(0.1, 0.5))
    elif floor_kind == "carpet":
        a = _jitter(rng, _pick(rng, _CARPETS))
        floor = _mat(
            rng,
            _CARPET,
            a,
            _jitter(rng, a * rng.uniform(0.6, 1.3)),
            scale=rng.uniform(0.3, 0.6),
            p1=float(rng.random() < 0.3),
        )
    elif floor_kind == "tile":
        a = _jitter(
            rng,
            _pick(
                rng,
                [
                    (0.85, 0.84, 0.8),
                    (0.7, 0.68, 0.64),
                    (0.5, 0.48, 0.46),
                    (0.8, 0.75, 0.65),
                    (0.35, 0.35, 0.36),
                ],
            ),
        )
        grout = np.clip(a * rng.uniform(0.6, 0.9), 0, 1)
        floor = _mat(
            rng,
            _TILE,
            a,
            grout,
            rng.choice([0.3, 0.33, 0.45, 0.6]),
            rng.uniform(0.003, 0.008),
            gloss=rng.uniform(0.2, 0.6),
            p2=0.04,
        )
    else:
        a = _jitter(rng, _pick(rng, [(0.55, 0.54, 0.52), (0.45, 0.44, 0.42), (0.6, 0.57, 0.52)]))
        floor = _mat(rng, _CONCRETE, a, a * 0.75, gloss=rng.uniform(0.05, 0.3))
    if kind == "office" or (kind in ("study", "basement") and rng.random() < 0.5):
        ceil = _mat(
            rng,
            _TILE,
            _jitter(rng, (0.88, 0.87, 0.84), 0.03),
            (0.78, 0.78, 0.77),
            0.6 if rng.random() < 0.7 else 1.2,
            0.02,
            p2=0.08,
        )
    else:
        ceil = _paint(rng, (0.9, 0.9, 0.88))
    if kind == "basement" and rng.random() < 0.5:
        wall = _mat(rng, _CONCRETE, _jitter(rng, (0.62, 0.6, 0.56)), (0.5, 0.48, 0.44))
        walls = [wall] * 4
    else:
        wall = _paint(rng)
        walls = [wall.copy() for _ in range(4)]
        if rng.random() < 0.15:  # an accent wall
            walls[int(rng.integers(4))] = _paint(rng)
    return [floor, ceil, *walls]


def _wall_frame(room: np.ndarray, wall: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Origin on the floor, unit direction along a wall, its inward normal (xy) and length."""
    W, D = room[0], room[1]
    if wall == 0:  # south, y = 0
        return np.array([0.0, 0.0]), np.array([1.0, 0.0]), 0.0, W
    if wall == 1:  # north, y = D
        return np.array([0.0, D]), np.array([1.0, 0.0]), math.pi, W
    if wall == 2:  # west, x = 0
        return np.array([0.0, 0.0]), np.array([0.0, 1.0]), -math.pi / 2, D
    return np.array([W, 0.0]), np.array([0.0, 1.0]), math.pi / 2, D


def _wall_point(room: np.ndarray, wall: int, s: float, off: float) -> tuple[float, float, float]:
    """World (x, y) of a point s along a wall and off metres into the room; the item yaw."""
    o, u, yaw, _ = _wall_frame(room, wall)
    normal = np.array([-math.sin(yaw), math.cos(yaw)])
    p = o + u * s + normal * off
    return float(p[0]), float(p[1]), yaw


def _wall_box(
    b: _Builder,
    wall: int,
    s0: float,
    s1: float,
    z0: float,
    z1: float,
    depth: float,
    mat: np.ndarray,
    casts: bool = False,
) -> None:
    """A box on a wall (door, window, picture, baseboard, shelf) protruding ``depth``; flat
    ones cast no shadow unless ``casts``."""
    x, y, yaw = _wall_point(b.room, wall, (s0 + s1) / 2, depth / 2)
    b.box((x, y, (z0 + z1) / 2), ((s1 - s0) / 2, depth / 2, (z1 - z0) / 2), yaw, mat, casts)


def _doorway(
    b: _Builder,
    wall: int,
    s0: float,
    w: float,
    h: float,
    casing: np.ndarray,
    wall_mat: np.ndarray,
    kind: str,
) -> None:
    """An opening in a wall into an adjacent space (the annex): the wall gets a real
    thickness around it (jambs), the annex sometimes furniture and a light, and a door
    opening a door leaf swung into the room."""
    rng, room = b.rng, b.room
    hc = room[2]
    _, _, yaw, length = _wall_frame(room, wall)
    thick = rng.uniform(0.1, 0.2)
    across = room[1] if wall < 2 else room[0]
    depth = max(1.0, min(rng.uniform(1.2, 5.0), 9.5 - across - thick))  # keep depth < ~10 m
    ext0, ext1 = s0 - rng.uniform(0.2, 2.5), s0 + w + rng.uniform(0.2, 2.5)
    height = max(h + 0.05, min(hc, rng.uniform(2.3, 3.0)))
    xa, ya, _ = _wall_point(room, wall, ext0, 0.0)
    xb, yb, _ = _wall_point(room, wall, ext1, -thick - depth)
    b.annex = np.array(
        [1.0, min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb), height, wall, s0, s0 + w, h, 0.0]
    )
    off = -0.002 - thick / 2
    for a0, a1, z0, z1 in (
        (-3.0, s0, 0.0, hc),
        (s0 + w, length + 3.0, 0.0, hc),
        (s0, s0 + w, h, max(hc, height)),
    ):
        x, y, _ = _wall_point(room, wall, (a0 + a1) / 2, off)
        b.box((x, y, (z0 + z1) / 2), ((a1 - a0) / 2, thick / 2, (z1 - z0) / 2), yaw, wall_mat)
    if w < 1.1:
        _wall_box(b, wall, s0 - 0.07, s0, 0.0, h + 0.07, 0.02, casing)
        _wall_box(b, wall, s0 + w, s0 + w + 0.07, 0.0, h + 0.07, 0.02, casing)
        _wall_box(b, wall, s0, s0 + w, h, h + 0.07, 0.02, casing)
        if rng.random() < 0.6:  # the door leaf, swung open into the room
            phi = rng.uniform(1.1, 1.8)
            hinge = np.array(_wall_point(room, wall, s0, 0.0)[:2])
            along = np.array([math.cos(yaw), math.sin(yaw)])
            inward = np.array([-math.sin(yaw), math.cos(yaw)])
            c = hinge + w / 2 * (math.cos(phi) * along + math.sin(phi) * inward)
            door = _wood(rng) if rng.random() < 0.5 else _cabinet(rng, 1, 1, (0.92,) * 3, False)
            b.box((c[0], c[1], h / 2), (w / 2 - 0.01, 0.02, h / 2 - 0.005), yaw + phi, door)
            b.occupied.append(
                (
                    min(hinge[0], c[0] * 2 - hinge[0]) - 0.05,
                    min(hinge[1], c[1] * 2 - hinge[1]) - 0.05,
                    max(hinge[0], c[0] * 2 - hinge[0]) + 0.05,
                    max(hinge[1], c[1] * 2 - hinge[1]) + 0.05,
                )
            )
    style = {"wood": _wood(rng)}
    for _ in range(int(rng.integers(0, 3))):
        item = _TEMPLATES[_pick(rng, ["cabinet", "shelf", "table", "sofa", "storage"])](rng, style)
        if ext1 - ext0 < item.w + 0.2:
            continue
        along_s = rng.uniform(ext0 + item.w / 2 + 0.05, ext1 - item.w / 2 - 0.05)
        x, y, _ = _wall_point(room, wall, along_s, -thick - depth + item.d / 2 + 0.02)
        b.place(item, x, y, yaw + math.pi)
    if rng.random() < 0.5:
        x, y, _ = _wall_point(room, wall, (ext0 + ext1) / 2, -thick - depth / 2)
        glow = _mat(rng, _LIGHT, (1.0, 0.97, 0.92), (0.85,) * 3, emit=rng.uniform(8, 16))
        b.box((x, y, height - 0.015), (0.25, 0.25, 0.015), 0.0, glow, False)
        power = rng.uniform(1.5, 5.0)
        b.light((x, y, height - 0.06), (power, power * 0.92, power * 0.8), radius=0.15)


def _window_dressing(
    b: _Builder, wall: int, s0: float, w: float, sill: float, top: float, kind: str
) -> None:
    """Curtains beside a window and/or a radiator under it."""
    rng, room = b.rng, b.room
    yaw = _wall_frame(room, wall)[2]
    if kind not in ("office", "basement", "kitchen") and rng.random() < 0.55:
        fabric = _fabric(rng)
        fabric[_M_P1], fabric[_M_SCALE] = 2.0, rng.uniform(0.07, 0.14)
        bottom = 0.01 if rng.random() < 0.6 else sill - 0.15
        z1 = min(room[2] - 0.02, top + rng.uniform(0.05, 0.25))
        off = rng.uniform(0.06, 0.14)
        for a0, a1 in (
            (s0 - rng.uniform(0.2, 0.45), s0 + rng.uniform(0.0, 0.15)),
            (s0 + w - rng.uniform(0.0, 0.15), s0 + w + rng.uniform(0.2, 0.45)),
        ):
            x, y, _ = _wall_point(room, wall, (a0 + a1) / 2, off)
            b.box((x, y, (bottom + z1) / 2), ((a1 - a0) / 2, 0.03, (z1 - bottom) / 2), yaw, fabric)
            b.wall_spans[wall].append((a0, a1, bottom, z1))
    if kind != "basement" and rng.random() < 0.3 and sill > 0.6:
        rw = w * rng.uniform(0.5, 0.9)
        r0 = s0 + (w - rw) / 2
        fins = _cabinet(rng, max(1, int(rw / 0.05)), 1, (0.93, 0.93, 0.92), woody=False)
        x, y, _ = _wall_point(room, wall, r0 + rw / 2, 0.08)
        b.box((x, y, (0.15 + sill - 0.1) / 2), (rw / 2, 0.04, (sill - 0.25) / 2), yaw, fins)
        b.wall_spans[wall].append((r0, r0 + rw, 0.0, sill))


def _joists(b: _Builder) -> None:
    """Exposed ceiling joists (basements) across the shorter room side."""
    rng, (W, D, hc) = b.rng, b.room
    mat = _wood(rng) if rng.random() < 0.7 else _paint(rng, (0.85, 0.85, 0.83))
    depth, gap = rng.uniform(0.15, 0.25), rng.uniform(0.4, 0.6)
    along_x = W < D
    span, length = (W, D) if along_x else (D, W)
    for k in range(int(length / gap)):
        c = (k + 0.5) * gap
        centre = (span / 2, c, hc - depth / 2) if along_x else (c, span / 2, hc - depth / 2)
        half = (span / 2, 0.025, depth / 2) if along_x else (0.025, span / 2, depth / 2)
        b.box(centre, half, 0.0, mat, False)


def _floor_clutter(b: _Builder) -> None:
    """Bins, cardboard boxes, bags and the like on free floor spots."""
    rng, (W, D, _) = b.rng, b.room
    for _ in range(int(rng.integers(0, 7))):
        kind = _pick(rng, ["bin", "carton", "bag", "stack", "stool"])
        x, y = rng.uniform(0.25, W - 0.25), rng.uniform(0.25, D - 0.25)
        if rng.random() < 0.6:  # mostly near a wall
            if rng.random() < 0.5:
                x = rng.choice([rng.uniform(0.2, 0.5), W - rng.uniform(0.2, 0.5)])
            else:
                y = rng.choice([rng.uniform(0.2, 0.5), D - rng.uniform(0.2, 0.5)])
        if kind == "bin":
            r, h = rng.uniform(0.1, 0.18), rng.uniform(0.25, 0.5)
            item = _Item(2 * r, 2 * r, h)
            item.cyl(0.0, 0.0, r, 0.0, h, _plastic(rng) if rng.random() < 0.6 else _metal(rng))
        elif kind == "stool":
            item = _Item(0.4, 0.4, 0.5)
            r, h = rng.uniform(0.15, 0.2), rng.uniform(0.45, 0.7)
            item.cyl(0.0, 0.0, r, h - 0.04, h, _wood(rng))
            _legs(item, 2 * r * 0.8, 2 * r * 0.8, h - 0.04, _metal(rng, (0.2,) * 3), 0.025, True)
        else:
            hx, hy = rng.uniform(0.12, 0.35), rng.uniform(0.1, 0.3)
            hz = rng.uniform(0.1, 0.3) if kind != "bag" else rng.uniform(0.12, 0.25)
            item = _Item(2 * hx, 2 * hy, 2 * hz)
            mat = (
                _fabric(rng)
                if kind == "bag"
                else _plastic(rng, (0.62, 0.48, 0.32), 0.05)
                if kind == "carton"
                else _plastic(rng)
            )
            item.block(-hx, hx, -hy, hy, 0.0, 2 * hz, mat)
            if kind == "stack":
                item.block(
                    -hx * 0.8,
                    hx * 0.8,
                    -hy * 0.8,
                    hy * 0.8,
                    2 * hz,
                    2 * hz + 0.15,
                    _plastic(rng, (0.62, 0.48, 0.32), 0.05),
                    rng.normal(0, 0.2),
                )
        yaw = rng.uniform(-math.pi, math.pi)
        if b.free(_footprint(item, x, y, yaw), margin=0.02):
            b.place(item, x, y, yaw)


_CARTON = (0.62, 0.48, 0.32)
_TUBS = [_CARTON, _CARTON, (0.25, 0.4, 0.75), (0.85, 0.85, 0.85), (0.75, 0.8, 0.85), (0.2,) * 3]


def _box_pile(rng: np.random.Generator) -> _Item:
    """A pile of cartons and plastic tubs: one to three columns of one to four boxes, each
    box a little off-centre and turned on the one below."""
    item = _Item(0.0, 0.0, 0.0)
    x = 0.0
    top = 0.0
    for _ in range(int(rng.integers(1, 4))):
        hx, hy = rng.uniform(0.12, 0.32), rng.uniform(0.12, 0.28)
        cx, z = x + hx, 0.0
        x += 2 * hx + rng.uniform(0.0, 0.1)
        for _ in range(int(rng.integers(1, 5))):
            hz = rng.uniform(0.08, 0.22)
            dx, dy = rng.normal(0, 0.03, 2)
            col = _jitter(rng, _pick(rng, _TUBS), 0.08)
            box = (cx + dx - hx, cx + dx + hx, dy - hy, dy + hy, z, z + 2 * hz)
            item.block(*box, _plastic(rng, col, 0.1), rng.normal(0, 0.12))
            z += 2 * hz
            hx, hy = hx * rng.uniform(0.75, 1.05), hy * rng.uniform(0.75, 1.05)
        top = max(top, z)
    item.shift(-x / 2, 0.0)  # centre the pile on its footprint
    item.w, item.h = x + 0.1, top
    item.d = 2 * max(abs(part[1]) + part[4] for part in item.boxes) + 0.1
    return item


def _rack(rng: np.random.Generator) -> _Item:
    """Open metal storage shelving (boards metal or wood), its shelves loaded with boxes and
    tubs of different sizes: the deep, broken-up surface of a basement or store room."""
    w, d, h = rng.uniform(0.8, 1.8), rng.uniform(0.35, 0.6), rng.uniform(1.4, 2.1)
    item = _Item(w, d, h)
    frame = _metal(rng, _pick(rng, [(0.7,) * 3, (0.2,) * 3, (0.55, 0.57, 0.6)]))
    board = frame if rng.random() < 0.6 else _wood(rng)
    t = 0.025
    for sx in (-1, 1):
        for sy in (-1, 1):
            px, py = sx * (w / 2 - t / 2), sy * (d / 2 - t / 2)
            item.block(px - t / 2, px + t / 2, py - t / 2, py + t / 2, 0.0, h, frame)
    levels = int(rng.integers(3, 6))
    gap = h / levels
    for k in range(levels):
        z = 0.08 + k * gap
        item.block(-w / 2, w / 2, -d / 2, d / 2, z, z + 0.02, board)
        cursor = -w / 2 + t + rng.uniform(0.0, 0.1)
        while True:
            bw = rng.uniform(0.12, 0.5)
            if cursor + bw > w / 2 - t or rng.random() < 0.12:
                break
            bh = min(gap - 0.06, rng.uniform(0.08, 0.45))
            bd = rng.uniform(0.5, 0.95) * (d - 0.04)
            y0 = -d / 2 + 0.02 + rng.uniform(0.0, d - 0.04 - bd)
            col = _jitter(rng, _pick(rng, _TUBS + _PLASTICS), 0.08)
            item.block(
                cursor, cursor + bw, y0, y0 + bd, z + 0.02, z + 0.02 + bh, _plastic(rng, col)
            )
            cursor += bw + rng.uniform(0.0, 0.12)
    return item


def _partition(rng: np.random.Generator) -> _Item:
    """A free-standing screen or cubicle panel (straight or L-shaped): a depth edge in the
    middle of the room with the room visible above and beside it."""
    w, h, t = rng.uniform(0.8, 2.4), rng.uniform(1.1, 1.9), rng.uniform(0.04, 0.08)
    col = _pick(rng, [(0.55, 0.56, 0.58), (0.35, 0.4, 0.5), (0.75, 0.72, 0.66), (0.45, 0.3, 0.2)])
    panel = _fabric(rng, col) if rng.random() < 0.7 else _plastic(rng, (0.9, 0.9, 0.88), 0.1)
    item = _Item(w, t, h)
    item.block(-w / 2, w / 2, -t / 2, t / 2, 0.0, h, panel)
    if rng.random() < 0.4:  # an L: a second panel at one end
        r = rng.uniform(0.6, 1.5)
        end = w / 2 * float(rng.choice([-1.0, 1.0]))
        item.block(end - t / 2, end + t / 2, t / 2, t / 2 + r, 0.0, h, panel)
        item.d = 2 * (r + t)
    return item


def _workstation(rng: np.random.Generator) -> _Item:
    """An open-plan office desk: a cubicle panel along its back (often another at one side,
    sometimes a shelf on the panel), a monitor, an office chair pulled up in front. The
    desk's top is a support for a row of things."""
    style = {"wood": _wood(rng)}
    item = _table(rng, style, desk=True)  # grown below into the whole workstation
    w, d = item.w, item.d
    t, h = rng.uniform(0.04, 0.07), rng.uniform(1.1, 1.7)
    item.h = h
    col = _pick(rng, [(0.55, 0.56, 0.58), (0.35, 0.4, 0.5), (0.75, 0.72, 0.66), (0.3, 0.3, 0.32)])
    panel = _fabric(rng, col) if rng.random() < 0.8 else _plastic(rng, (0.9, 0.9, 0.88), 0.1)
    item.block(-w / 2, w / 2, -d / 2 - t, -d / 2, 0.0, h, panel)
    if rng.random() < 0.7:  # a side panel, at either end, as deep as the desk or deeper
        side = float(rng.choice([-1.0, 1.0]))
        px = side * (w / 2 + t / 2)
        item.block(px - t / 2, px + t / 2, -d / 2 - t, d / 2 + rng.uniform(0.0, 0.4), 0.0, h, panel)
    if rng.random() < 0.35:  # an overhead shelf on the back panel
        sz = rng.uniform(1.15, max(1.2, h - 0.05))
        item.block(-w / 2, w / 2, -d / 2, -d / 2 + 0.3, sz, sz + 0.3, _cabinet(rng, 2, 1))
    chair = _chair(rng, style, office=True)  # turned to face the desk (local -y)
    cy = d / 2 + rng.uniform(0.05, 0.35)
    cx = rng.uniform(-0.2, 0.2) * w
    item.add(chair, cx, cy, turned=True)
    x0, x1, y0, y1 = item.bounds()  # side panel and chair base included
    item.shift(-(x0 + x1) / 2, -(y0 + y1) / 2)  # centre the parts on the footprint
    item.w, item.d = x1 - x0, y1 - y0
    return item


def _workstations(b: _Builder, rng: np.random.Generator, mean: float, camera: np.ndarray) -> None:
    """About ``mean`` workstations (:func:`_workstation`), half with the panel against a wall,
    half free-standing across the room, none within 1 m of the camera; desks filled."""
    cam_x, cam_y = float(camera[0]), float(camera[1])

    def fits(rect: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = rect
        near = x0 - 1 < cam_x < x1 + 1 and y0 - 1 < cam_y < y1 + 1
        return not near and b.free(rect, 0.1)

    for _ in range(int(rng.poisson(mean))):
        item = _workstation(rng)
        supports, item.supports = item.supports, []  # filled below from this generator
        spot = _place_anywhere(b, item, rng, 0.5, 0.05, fits)
        if spot is not None:
            for sup in supports:
                b.supports.append((sup, *spot, _clutter(b, sup, *spot, rng)))


def _place_anywhere(
    b: _Builder,
    item: _Item,
    rng: np.random.Generator,
    wall_prob: float,
    yaw_sd: float,
    fits: Callable[[tuple[float, float, float, float]], bool],
) -> tuple[float, float, float] | None:
    """Place an item in up to 12 tries: with its back to a random wall (probability
    ``wall_prob``; the wall span is then recorded) or free-standing at a right angle (plus
    noise of ``yaw_sd`` radians), where ``fits`` accepts its floor rectangle. Returns (x, y,
    yaw), or None where no try fitted."""
    W, D, _ = b.room
    for _ in range(12):
        on_wall = wall_prob > 0 and rng.random() < wall_prob
        if on_wall:
            spot = _wall_spot(b, item, rng)
            if spot is None:
                continue
            x, y, yaw, wall, s = spot
        else:
            x, y = rng.uniform(0.3, W - 0.3), rng.uniform(0.3, D - 0.3)
            yaw = round(rng.uniform(-math.pi, math.pi) / (math.pi / 2)) * (math.pi / 2)
            yaw += rng.normal(0, yaw_sd)
        if not fits(_footprint(item, x, y, yaw)):
            continue
        b.place(item, x, y, yaw)
        if on_wall:
            b.wall_spans[wall].append((s - item.w / 2, s + item.w / 2, 0.0, item.h))
        return x, y, yaw
    return None


def _ceiling_runs(b: _Builder, rng: np.random.Generator) -> None:
    """Ducts and pipes along the ceiling, a vertical pipe or two down to the floor."""
    W, D, hc = b.room
    metal = _metal(rng, _pick(rng, [(0.7,) * 3, (0.55, 0.57, 0.6), (0.9, 0.9, 0.88)]))
    for _ in range(int(rng.integers(1, 5))):
        along_x = rng.random() < 0.5
        span = W if along_x else D
        at = rng.uniform(0.2, (D if along_x else W) - 0.2)
        half = rng.uniform(0.1, 0.3) if rng.random() < 0.4 else rng.uniform(0.015, 0.05)
        z = hc - rng.uniform(0.02, 0.4) - half
        c = (span / 2, at, z) if along_x else (at, span / 2, z)
        h = (span / 2, half, half * rng.uniform(0.6, 1.0))
        b.box(c, h if along_x else (h[1], h[0], h[2]), 0.0, metal, False)
    for _ in range(int(rng.integers(0, 3))):
        x = float(rng.choice([rng.uniform(0.05, 0.2), W - rng.uniform(0.05, 0.2)]))
        y = rng.uniform(0.2, D - 0.2)
        b.cyl(x, y, rng.uniform(0.02, 0.06), 0.0, hc, metal, False)


def _hung_on_walls(b: _Builder, rng: np.random.Generator) -> None:
    """Coats, bags and towels hung on walls: soft lumps standing off the wall."""
    for _ in range(int(rng.integers(1, 4))):
        wall = int(rng.integers(4))
        length = _wall_frame(b.room, wall)[3]
        w = rng.uniform(0.25, 0.55)
        if length < w + 0.4:
            continue
        s0 = rng.uniform(0.2, length - w - 0.2)
        z1 = rng.uniform(1.5, 1.9)
        z0 = z1 - rng.uniform(0.3, 0.9)
        if not b.wall_free(wall, s0, s0 + w, z0, z1):
            continue
        _wall_box(b, wall, s0, s0 + w, z0, z1, rng.uniform(0.08, 0.25), _fabric(rng), True)
        b.wall_spans[wall].append((s0, s0 + w, z0, z1))


def _more_clutter(b: _Builder, rng: np.random.Generator, level: float, kind: str) -> None:
    """What real rooms have and tidy renders lack (``SceneConfig.clutter``): fuller tables
    and shelves, piles of boxes, loaded racks, partitions, ceiling ducts and pipes, things
    hung on walls. ``level`` scales how much; the draws come from their own generator, so
    the rest of the scene is the one drawn without clutter."""
    busy = 2.0 if kind in ("basement", "office") else 1.0
    for sup, x, y, yaw, end in list(b.supports):  # fill rows on tables, desks and shelves
        if rng.random() < min(1.0, level):
            count = int(rng.integers(1, 2 + round(6 * level)))
            _clutter(b, sup, x, y, yaw, rng, end + rng.uniform(0.03, 0.15), count)
    makers = [(_rack, 1.2 * busy), (_box_pile, 3.0 * busy), (_partition, 0.6 * busy)]
    for make, mean in makers:
        # partitions stand free, kept 0.6 m from everything: not a wall before the lens
        wall_prob, margin = (0.0, 0.6) if make is _partition else (0.7, 0.02)
        for _ in range(int(rng.poisson(mean * level))):
            item = make(rng)
            _place_anywhere(b, item, rng, wall_prob, 0.1, functools.partial(b.free, margin=margin))
    if rng.random() < min(1.0, {"basement": 0.9, "office": 0.3}.get(kind, 0.12) * level):
        _ceiling_runs(b, rng)
    if rng.random() < min(1.0, 0.5 * level):
        _hung_on_walls(b, rng)


def _decorate_walls(b: _Builder, kind: str, walls: list[np.ndarray]) -> None:
    """Door(s) or an opening into an annex, windows (with curtains, radiators),
    baseboards; records the wall spans they block."""
    rng, room = b.rng, b.room
    hc = room[2]
    if rng.random() < 0.6:
        mat = _paint(rng, (0.95, 0.95, 0.93)) if rng.random() < 0.6 else _wood(rng)
        h = rng.uniform(0.06, 0.12)
        for wall in range(4):
            _wall_box(b, wall, 0.0, _wall_frame(room, wall)[3], 0.0, h, 0.012, mat)
    for _ in range(int(rng.choice([1, 1, 1, 2]))):  # doors
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall)[3]
        w, h = rng.uniform(0.8, 0.95), rng.uniform(1.98, 2.1)
        if length < w + 0.4:
            continue
        s0 = rng.uniform(0.15, length - w - 0.15)
        casing = _paint(rng, (0.95, 0.95, 0.93)) if rng.random() < 0.6 else _wood(rng)
        if b.annex[0] == 0 and rng.random() < 0.5:
            if rng.random() < 0.3 and length > 2.0:  # a wide opening, not a door
                w = rng.uniform(1.2, min(3.0, length - 0.6))
                h = rng.uniform(2.0, hc - 0.05)
                s0 = rng.uniform(0.3, length - w - 0.3)
            _doorway(b, wall, s0, w, h, casing, walls[wall], kind)
        else:
            _wall_box(b, wall, s0 - 0.07, s0 + w + 0.07, 0.0, h + 0.07, 0.02, casing)
            door = _wood(rng) if rng.random() < 0.5 else _cabinet(rng, 1, 1, (0.92,) * 3, False)
            _wall_box(b, wall, s0, s0 + w, 0.0, h, 0.035, door)
        b.wall_spans[wall].append((s0 - 0.1, s0 + w + 0.1, 0.0, 3.0))
        x, y, _ = _wall_point(room, wall, s0 + w / 2, 0.5)
        b.occupied.append((x - 0.5, y - 0.5, x + 0.5, y + 0.5))
    n_win = int(rng.choice([0, 1, 1, 2, 2, 3])) if kind != "basement" else int(rng.integers(0, 2))
    for _ in range(n_win):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall)[3]
        w = rng.uniform(0.6, min(2.2, length - 0.6))
        if w < 0.5:
            continue
        s0 = rng.uniform(0.3, length - w - 0.3)
        if any(s0 < e1 and e0 < s0 + w for e0, e1, _, _ in b.wall_spans[wall]):
            continue
        sill = rng.uniform(0.75, 1.0) if kind != "basement" else rng.uniform(1.6, 1.9)
        top = min(hc - rng.uniform(0.15, 0.45), sill + rng.uniform(0.5, 1.6))
        frame = _pick(rng, [(0.95, 0.95, 0.94), (0.95, 0.95, 0.94), (0.45, 0.3, 0.2), (0.3,) * 3])
        sky = _jitter(rng, (0.85, 0.9, 1.0), 0.05)
        glass = _mat(
            rng,
            _WINDOW,
            sky,
            _jitter(rng, frame, 0.02),
            scale=rng.uniform(0.04, 0.08),
            emit=rng.uniform(2.0, 5.0),
            p1=int(rng.integers(0, 3)),
            p2=rng.uniform(-0.6, 0.2),
        )
        _wall_box(b, wall, s0, s0 + w, sill, top, 0.01, glass)
        _wall_box(
            b, wall, s0 - 0.05, s0 + w + 0.05, sill - 0.04, sill, 0.05, _plastic(rng, frame, 0.2)
        )  # the sill
        b.wall_spans[wall].append((s0 - 0.05, s0 + w + 0.05, sill - 0.05, top))
        _window_dressing(b, wall, s0, w, sill, top, kind)
        x, y, yaw = _wall_point(room, wall, s0 + w / 2, 0.4)
        power = rng.uniform(1.5, 4.0) * w * (top - sill)
        b.light(
            (x, y, (sill + top) / 2),
            (power, power, power * rng.uniform(1.0, 1.15)),
            (-math.sin(yaw), math.cos(yaw), 0.0),
            1.0,
            0.35,
        )


def _pictures(b: _Builder, kind: str) -> None:
    """Pictures, posters or a whiteboard on free wall spans above furniture."""
    rng, room = b.rng, b.room
    for _ in range(int(rng.choice([0, 1, 2, 2, 3, 4]))):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall)[3]
        whiteboard = kind in ("office", "study") and rng.random() < 0.4
        w = rng.uniform(1.2, 2.0) if whiteboard else rng.uniform(0.3, 1.2)
        h = w * rng.uniform(0.5, 0.8) if whiteboard else w * rng.uniform(0.6, 1.3)
        if length < w + 0.4:
            continue
        s0 = rng.uniform(0.2, length - w - 0.2)
        zc = rng.uniform(1.35, 1.7)
        z0, z1 = zc - h / 2, min(zc + h / 2, room[2] - 0.2)
        if not b.wall_free(wall, s0, s0 + w, z0, z1):
            continue
        if not whiteboard and rng.random() < 0.25:  # a wall shelf with books instead
            board = _wood(rng) if rng.random() < 0.6 else _plastic(rng, (0.92,) * 3, 0.1)
            depth = rng.uniform(0.18, 0.28)
            _wall_box(b, wall, s0, s0 + w, zc - 0.02, zc, depth, board, True)
            fill = rng.uniform(0.3, 0.9) * w
            x, y, yaw = _wall_point(room, wall, s0 + rng.uniform(0, w - fill) + fill / 2, depth / 2)
            hz = rng.uniform(0.1, 0.14)
            b.box(
                (x, y, zc + hz),
                (fill / 2, depth / 2 - 0.02, hz),
                yaw + math.pi,
                _mat(rng, _BOOKS, (0.5, 0.5, 0.5)),
            )
            b.wall_spans[wall].append((s0, s0 + w, zc - 0.05, zc + 0.35))
            continue
        a = _jitter(rng, _pick(rng, _PLASTICS + _WALL_COLOURS), 0.1)
        frame = _pick(rng, [(0.1,) * 3, (0.9, 0.9, 0.88), (0.45, 0.3, 0.18), (0.7, 0.7, 0.7)])
        mat = _mat(
            rng,
            _PICTURE,
            a,
            frame,
            scale=rng.uniform(0.01, 0.05),
            gloss=0.3,
            p1=float(whiteboard),
            p2=rng.uniform(0.0, 1.0),
        )
        _wall_box(b, wall, s0, s0 + w, z0, z1, 0.025, mat)
        b.wall_spans[wall].append((s0, s0 + w, z0, z1))


def _wall_fittings(b: _Builder) -> None:
    """Sockets, switches and the odd thermostat or vent: small things of standard size at
    standard heights on free wall spans."""
    rng, room = b.rng, b.room
    plate = _plastic(rng, (0.93, 0.92, 0.9) if rng.random() < 0.8 else (0.6, 0.6, 0.6), 0.3)
    for _ in range(int(rng.integers(1, 7))):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall)[3]
        kind = _pick(rng, ["socket", "socket", "switch", "switch", "thermostat", "vent"])
        w, h, z = {
            "socket": (0.08, 0.08, rng.uniform(0.25, 0.4)),
            "switch": (0.08, 0.12, rng.uniform(1.05, 1.3)),
            "thermostat": (0.1, 0.12, rng.uniform(1.4, 1.6)),
            "vent": (rng.uniform(0.25, 0.5), rng.uniform(0.12, 0.25), room[2] - 0.3),
        }[kind]
        s0 = rng.uniform(0.1, length - w - 0.1)
        if not b.wall_free(wall, s0, s0 + w, z, z + h):
            continue
        mat = plate if kind != "vent" else _cabinet(rng, 1, 6, (0.85, 0.85, 0.84), woody=False)
        _wall_box(b, wall, s0, s0 + w, z, z + h, 0.01, mat)


def _ceiling_lights(b: _Builder, drop: float = 0.0) -> None:
    """1-4 ceiling fixtures (panels, downlights or pendants), each with a point light;
    ``drop`` lowers them (below joists)."""
    rng, room = b.rng, b.room
    W, D, hc = room[0], room[1], room[2] - drop
    n = 1 if W * D < 10 else int(rng.choice([1, 2, 2, 3, 4]))
    if n == 4:
        spots = [((i + 0.5) / 2, (j + 0.5) / 2) for i in range(2) for j in range(2)]
    elif W >= D:
        spots = [((i + 0.5) / n, 0.5) for i in range(n)]
    else:
        spots = [(0.5, (i + 0.5) / n) for i in range(n)]
    style = _pick(rng, ["panel", "panel", "down", "pendant"])
    warmth = _pick(rng, [(1.0, 0.82, 0.62), (1.0, 0.92, 0.82), (0.95, 0.97, 1.0)])
    power = rng.uniform(2.5, 6.0) * max(1.0, W * D / 20.0) / n
    for fx, fy in spots:
        x = fx * W + rng.normal(0, 0.15)
        y = fy * D + rng.normal(0, 0.15)
        glow = _mat(rng, _LIGHT, (1.0, 0.98, 0.95), (0.85, 0.85, 0.85), emit=rng.uniform(8, 16))
        if style == "panel":
            hx, hy = (0.3, 0.3) if rng.random() < 0.6 else (0.6, 0.15)
            b.box((x, y, hc - 0.015), (hx, hy, 0.015), 0.0, glow, False)
            lz, radius = hc - 0.06, max(hx, hy) * 0.7
        elif style == "down":
            b.cyl(x, y, 0.09, hc - 0.01, hc, glow, False)
            lz, radius = hc - 0.05, 0.08
        else:
            r = rng.uniform(0.15, 0.25)
            drop = rng.uniform(0.4, 0.7)
            shade = _fabric(rng, (0.9, 0.88, 0.8)) if rng.random() < 0.5 else _metal(rng)
            b.cyl(x, y, 0.006, hc - drop, hc, _plastic(rng, (0.1,) * 3), False)
            b.cyl(x, y, r, hc - drop - 0.25, hc - drop, shade, False)
            b.cyl(x, y, r * 0.6, hc - drop - 0.26, hc - drop - 0.25, glow, False)
            lz, radius = hc - drop - 0.3, r * 0.5
        b.light(
            (x, y, lz),
            tuple(power * np.asarray(warmth)),
            (0.0, 0.0, -1.0),
            float(rng.choice([0.0, 0.5, 1.0])),
            radius,
        )


def _wall_spot(
    b: _Builder, item: _Item, rng: np.random.Generator, wall: int | None = None
) -> tuple[float, float, float, int, float] | None:
    """One try at a spot for an item with its back to a wall (a random wall unless given):
    (x, y, yaw, wall, s) with s the distance along the wall, or None where the wall is too
    short or something already stands there. Floor space is the caller's to check."""
    wall = int(rng.integers(4)) if wall is None else wall
    length = _wall_frame(b.room, wall)[3]
    if length < item.w + 0.1:
        return None
    s = rng.uniform(item.w / 2 + 0.02, length - item.w / 2 - 0.02)
    if not b.wall_free(wall, s - item.w / 2, s + item.w / 2, 0.0, item.h):
        return None
    x, y, yaw = _wall_point(b.room, wall, s, item.d / 2 + rng.uniform(0.0, 0.04))
    return x, y, yaw, wall, s


def _place_furniture(
    b: _Builder, kind: str, style: dict
) -> list[tuple[_Item, float, float, float]]:
    """Wall-aligned and free-standing furniture for a room type, without overlaps.

    Returns the items placed against a wall, as (item, x, y, yaw); yaw faces into the room.
    """
    rng, room = b.rng, b.room
    W, D = room[0], room[1]
    weights = _ROOM_TYPES[kind]["items"]
    names = [k for k in weights if weights[k] > 0]
    p = np.array([weights[k] for k in names], np.float64)
    p /= p.sum()
    wanted: list[str] = []
    if kind == "bedroom":
        wanted.append("bed")
    if kind == "kitchen":
        wanted.append("counter")
    n = int(np.clip(round(W * D / rng.uniform(1.6, 3.2)), 3, 16))
    wanted += list(rng.choice(names, size=n, p=p))
    wanted = [w for i, w in enumerate(wanted) if w not in _UNIQUE_ITEMS or w not in wanted[:i]]
    on_walls: list[tuple[_Item, float, float, float]] = []
    for name in wanted:
        against_wall = name not in _CENTRE_ITEMS or (name in _WALL_ITEMS and rng.random() < 0.5)
        if name == "counter":
            wall = int(rng.integers(4))
            length = _wall_frame(room, wall)[3]
            run = rng.uniform(0.5, 0.95) * length
            item = _counter_run(rng, style, run)
        else:
            item = _TEMPLATES[name](rng, style)
        for _ in range(12):
            if against_wall:
                spot = _wall_spot(b, item, rng, wall if name == "counter" else None)
                if spot is None:
                    continue
                x, y, yaw, wall, s = spot
            else:
                x, y = rng.uniform(0.3, W - 0.3), rng.uniform(0.3, D - 0.3)
                yaw = rng.uniform(-math.pi, math.pi)
                if rng.random() < 0.6:
                    yaw = round(yaw / (math.pi / 2)) * (math.pi / 2) + rng.normal(0, 0.05)
            rect = _footprint(item, x, y, yaw)
            if not b.free(rect):
                continue
            b.place(item, x, y, yaw)
            if against_wall:
                b.wall_spans[wall].append((s - item.w / 2, s + item.w / 2, 0.0, item.h))
                on_walls.append((item, x, y, yaw))
            if (name in ("table", "low_table") and not against_wall) or name == "desk":
                _chairs_around(
                    b, item, x, y, yaw, style, office=kind == "office", desk=name == "desk"
                )
            break
    if rng.random() < 0.35 and W > 1.9 and D > 1.5:  # a rug, where one fits
        rw, rd = rng.uniform(1.2, min(3.0, W - 0.6)), rng.uniform(0.8, min(2.2, D - 0.6))
        if rw > 0.8 and rd > 0.6:
            x, y = (
                rng.uniform(rw / 2 + 0.3, W - rw / 2 - 0.3),
                rng.uniform(rd / 2 + 0.3, D - rd / 2 - 0.3),
            )
            a = _jitter(rng, _pick(rng, _CARPETS + _FABRICS))
            rug = _mat(
                rng,
                _CARPET,
                a,
                _jitter(rng, _pick(rng, _FABRICS)),
                rng.uniform(0.2, 0.5),
                p1=float(rng.random() < 0.6),
            )
            b.box((x, y, 0.006), (rw / 2, rd / 2, 0.006), 0.0, rug, False)
    return on_walls


def _close_view(
    b: _Builder, targets: list[tuple[_Item, float, float, float]], height: float, cfg: SceneConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """A camera 0.7-2.2 m in front of a piece of furniture against a wall, aimed at it and
    pitched down at a point on it: the desk, shelf and cabinet close-ups that hand-held
    captures are full of and across-the-room views lack; the camera keeps its ``height``
    (already below the ceiling). None when no free spot is found."""
    rng = b.rng
    W, D, _ = b.room
    for t in rng.permutation(len(targets)):
        item, x, y, yaw = targets[t]
        normal = np.array([-math.sin(yaw), math.cos(yaw)])
        along = np.array([math.cos(yaw), math.sin(yaw)])
        for _ in range(8):
            dist = item.d / 2 + rng.uniform(0.7, 2.2)
            side = rng.uniform(-0.5, 0.5) * (item.w + dist)
            cx, cy = np.array([x, y]) + normal * dist + along * side
            rect = (cx - 0.3, cy - 0.3, cx + 0.3, cy + 0.3)
            if not (0.4 < cx < W - 0.4 and 0.4 < cy < D - 0.4) or not b.free(rect, margin=0.0):
                continue
            aim_z = rng.uniform(0.3, 0.9) * min(item.h, height)
            heading = math.atan2(y - cy, x - cx) + rng.normal(0.0, 0.12)
            pitch = math.atan2(height - aim_z, math.hypot(x - cx, y - cy)) + rng.normal(0.0, 0.05)
            pitch = min(max(pitch, 0.0), math.radians(40.0))
            roll = math.radians(rng.uniform(*cfg.roll_deg_range))
            b.occupied.append(rect)
            return np.array([cx, cy, height]), _camera_rotation(heading, pitch, roll)
    return None


def _chairs_around(
    b: _Builder, table: _Item, x: float, y: float, yaw: float, style: dict, office: bool, desk: bool
) -> None:
    """Chairs facing a table (desks: one chair in front)."""
    rng = b.rng
    if desk:
        sides = [(0.0, table.d / 2 + 0.15, math.pi)]
    else:
        sides = [
            (0.0, -table.d / 2 - 0.2, 0.0),
            (0.0, table.d / 2 + 0.2, math.pi),
            (-table.w / 2 - 0.2, 0.0, -math.pi / 2),
            (table.w / 2 + 0.2, 0.0, math.pi / 2),
        ]
        if table.w > 1.3:
            sides += [
                (-table.w / 4, -table.d / 2 - 0.2, 0.0),
                (table.w / 4, table.d / 2 + 0.2, math.pi),
            ]
            sides[0] = (table.w / 4, -table.d / 2 - 0.2, 0.0)
            sides[1] = (-table.w / 4, table.d / 2 + 0.2, math.pi)
    chair = _chair(rng, style, office=office)
    c, s = math.cos(yaw), math.sin(yaw)
    for lx, ly, lyaw in sides:
        if rng.random() < (0.35 if not desk else 0.15):
            continue
        cx, cy = x + c * lx - s * ly, y + s * lx + c * ly
        cyaw = yaw + lyaw + rng.normal(0, 0.25)
        # chairs tuck partly under the table: only check against other items loosely
        rect = _footprint(chair, cx, cy, cyaw)
        shrink = (rect[0] + 0.15, rect[1] + 0.15, rect[2] - 0.15, rect[3] - 0.15)
        occupied, b.occupied = b.occupied, b.occupied[:-1]
        ok = b.free(shrink, margin=0.0)
        b.occupied = occupied
        if ok and b.free(rect, margin=-0.3):
            b.place(chair, cx, cy, cyaw)


def _sample_camera(rng: np.random.Generator, room: np.ndarray, cfg: SceneConfig):
    """Camera centre (3,) and world-from-camera rotation (3, 3): pitched down, small roll,
    looking across the room at a random target."""
    W, D, hc = room
    margin = 0.5
    for _ in range(50):
        if rng.random() < 0.6:  # near a wall, as when photographing a room
            x, y = rng.uniform(margin, W - margin), rng.uniform(margin, D - margin)
            wall = int(rng.integers(4))
            near = rng.uniform(margin, min(1.3, max(margin, (W if wall > 1 else D) / 2)))
            if wall == 0:
                y = near
            elif wall == 1:
                y = D - near
            elif wall == 2:
                x = near
            else:
                x = W - near
        else:
            x, y = rng.uniform(margin, W - margin), rng.uniform(margin, D - margin)
        tx, ty = rng.uniform(0.2, W - 0.2), rng.uniform(0.2, D - 0.2)
        if rng.random() < 0.7:  # mostly look across the room: the farther of two targets
            ux, uy = rng.uniform(0.2, W - 0.2), rng.uniform(0.2, D - 0.2)
            if math.hypot(ux - x, uy - y) > math.hypot(tx - x, ty - y):
                tx, ty = ux, uy
        if math.hypot(tx - x, ty - y) >= min(1.5, 0.5 * max(W, D)):
            break
    yaw = math.atan2(ty - y, tx - x) + rng.normal(0.0, 0.15)
    height = rng.uniform(*cfg.camera_height_range)
    pitch = math.radians(rng.uniform(*cfg.pitch_deg_range))
    roll = math.radians(rng.uniform(*cfg.roll_deg_range))
    return np.array([x, y, min(height, hc - 0.3)]), _camera_rotation(yaw, pitch, roll)


def _camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-camera rotation (columns right, down, forward) for a heading ``yaw`` (from
    world +x towards +y), downward ``pitch`` and ``roll`` about the optical axis, radians."""
    fwd = np.array(
        [math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), -math.sin(pitch)]
    )
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.cross(fwd, right)
    cr, sr = math.cos(roll), math.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    return np.stack([right, down, fwd], axis=1)


def _sample_intrinsics(rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    """(fx, fy, cx, cy) at the config size; random focal length when asked."""
    if cfg.intrinsics is not None:
        k = np.asarray(cfg.intrinsics, np.float64)
    else:
        k = scale_intrinsics(NYU_INTRINSICS, NYU_SIZE, (cfg.height, cfg.width)).astype(np.float64)
    if cfg.random_focal:
        lo, hi = cfg.focal_scale_range
        s = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        k = k.copy()
        k[0] *= s
        k[1] *= s * (1.0 + rng.normal(0.0, 0.003))
        k[2] += rng.normal(0.0, 0.015) * cfg.width
        k[3] += rng.normal(0.0, 0.015) * cfg.height
    return k


def _sample_sensor(rng: np.random.Generator, cfg: SceneConfig) -> SensorParams:
    """Camera effects for one scene; neutral when ``cfg.sensor_effects`` is off."""
    if not cfg.sensor_effects:
        return SensorParams()
    border = 0
    if rng.random() < cfg.border_prob:
        border = max(1, round(rng.uniform(5.0, 8.0) * cfg.width / NYU_SIZE[1]))
    cast = rng.normal(0.0, 0.06, 3)
    gains = np.exp(cast - cast.mean())
    return SensorParams(
        exposure=float(rng.uniform(0.3, 0.52)),
        wb_gains=tuple(float(g) for g in gains),
        saturation=float(rng.uniform(0.75, 1.15)),
        gamma=float(rng.uniform(1.9, 2.4)),
        contrast=float(rng.uniform(0.1, 0.6)),
        vignette=float(rng.uniform(0.0, 0.4)),
        blur_sigma=float(rng.uniform(0.0, 0.8)),
        sharpen=float(rng.uniform(0.2, 0.8)) if rng.random() < 0.5 else 0.0,
        noise_sigma=float(rng.uniform(0.002, 0.015)),
        shot_noise=float(rng.uniform(0.0, 0.03)),
        jpeg_quality=int(rng.integers(55, 96)) if rng.random() < cfg.jpeg_prob else 0,
        border=border,
        border_value=1.0 if rng.random() < 0.8 else 0.0,
    )


def sample_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Draw a scene (room, furniture, materials, lights, camera, sensor) from a seed.

    The draw uses only a numpy Generator seeded with ``seed``, so it is the same on every
    machine and device.

    Args:
        seed: scene seed (any non-negative int).
        config: what to draw; defaults to :class:`SceneConfig`.

    Returns:
        The :class:`Scene`.

    Example:
        >>> sample_scene(3).room.shape
        (3,)
    """
    cfg = config or SceneConfig()
    rng = np.random.default_rng([int(seed), 0x5CE9E])
    room = np.array(
        [
            rng.uniform(*cfg.room_width_range),
            rng.uniform(*cfg.room_depth_range),
            rng.uniform(*cfg.ceiling_height_range),
        ]
    )
    kinds = list(_ROOM_TYPES)
    probs = np.array([_ROOM_TYPES[k]["p"] for k in kinds])
    kind = str(rng.choice(kinds, p=probs / probs.sum()))
    surfaces = _room_surfaces(rng, kind)
    annex_surfaces = _room_surfaces(rng, _pick(rng, list(_ROOM_TYPES)))
    if rng.random() < 0.5:
        annex_surfaces[0] = surfaces[0]
    cam_pos, cam_rot = _sample_camera(rng, room, cfg)
    b = _Builder(rng, room)
    b.occupied.append((cam_pos[0] - 0.45, cam_pos[1] - 0.45, cam_pos[0] + 0.45, cam_pos[1] + 0.45))
    if cfg.decorations:
        _decorate_walls(b, kind, surfaces[2:6])
    beams = cfg.furniture and kind == "basement" and surfaces[1][_M_TYPE] == _PAINT
    if beams and rng.random() < 0.6:
        _joists(b)
    else:
        beams = False
    _ceiling_lights(b, drop=0.25 if beams else 0.0)
    if cfg.furniture and cfg.workstations > 0:  # first: the room's furniture fits around them
        _workstations(b, np.random.default_rng([int(seed), 0x0FF1CE]), cfg.workstations, cam_pos)
    if cfg.furniture:
        style = {"wood": _wood(rng)}
        on_walls = _place_furniture(b, kind, style)
        if on_walls and cfg.close_view_prob > 0 and rng.random() < cfg.close_view_prob:
            view = _close_view(b, on_walls, float(cam_pos[2]), cfg)
            if view is not None:
                cam_pos, cam_rot = view
        _floor_clutter(b)
    if cfg.decorations:
        _pictures(b, kind)
        _wall_fittings(b)
    if cfg.furniture and cfg.clutter > 0:
        _more_clutter(b, np.random.default_rng([int(seed), 0xC1477E5]), cfg.clutter, kind)
    lights = np.stack(b.lights)
    mean_power = float(np.mean(lights[:, 3:6].sum(1) / 3))
    ambient = mean_power / room[2] ** 2 * rng.uniform(0.05, 0.22)
    boxes = np.array(b.boxes, np.float64).reshape(-1, 7)
    cyls = np.array(b.cyls, np.float64).reshape(-1, 5)
    mats = np.stack(surfaces + annex_surfaces + b.box_mats + b.cyl_mats)
    return Scene(
        seed=int(seed),
        room=room,
        cam_pos=cam_pos,
        cam_rot=cam_rot,
        intrinsics=_sample_intrinsics(rng, cfg),
        boxes=boxes,
        box_casts=np.array(b.box_casts, bool),
        cylinders=cyls,
        cyl_casts=np.array(b.cyl_casts, bool),
        materials=mats,
        lights=lights,
        ambient=float(ambient),
        annex=b.annex,
        sensor=_sample_sensor(rng, cfg),
    )
