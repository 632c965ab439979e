"""Furniture templates: each draws one :class:`Item` (tables, chairs, beds, cabinets,
shelves, sofas, a TV stand, storage, plants, lamps, a fridge, a kitchen counter, a pole)
in its own frame, front facing local +y; :data:`_TEMPLATES` names them for the room
types."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dpde_cli.data.synthetic._builder import Box, Item, Support
from dpde_cli.data.synthetic._materials import (
    _cabinet,
    _fabric,
    _jitter,
    _mat,
    _metal,
    _paint,
    _pick,
    _plastic,
    _wood,
)
from dpde_cli.data.synthetic._scene import _BOOKS, _CONCRETE, _FOLIAGE, _SCREEN


class Style(NamedTuple):
    """What the furniture of one room shares: its wood (a material row)."""

    wood: np.ndarray


def _legs(item: Item, w: float, d: float, z1: float, mat: np.ndarray, t: float, round_: bool):
    """Four legs at the corners of a w x d rectangle, up to height z1."""
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - t), sy * (d / 2 - t)
            if round_:
                item.cyl(x, y, t * 0.6, 0.0, z1, mat)
            else:
                item.block(x - t / 2, x + t / 2, y - t / 2, y + t / 2, 0.0, z1, mat)


def _table(rng: np.random.Generator, style: Style, low: bool = False, desk: bool = False) -> Item:
    """Table, coffee table or desk: a top on four legs (desks: sometimes a drawer unit)."""
    if low:
        w, d, h = rng.uniform(0.8, 1.3), rng.uniform(0.45, 0.7), rng.uniform(0.38, 0.5)
    elif desk:
        w, d, h = rng.uniform(1.0, 1.8), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.77)
    else:
        w, d, h = rng.uniform(0.8, 1.9), rng.uniform(0.7, 1.0), rng.uniform(0.72, 0.78)
    item = Item(w, d, h)
    top_mat = style.wood if rng.random() < 0.65 else _plastic(rng, gloss=0.2)
    th = rng.uniform(0.025, 0.05)
    item.block(-w / 2, w / 2, -d / 2, d / 2, h - th, h, top_mat)
    leg_mat = style.wood if rng.random() < 0.5 else _metal(rng, (0.2, 0.2, 0.2))
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
    item.supports.append(Support(-w / 2 + 0.05, w / 2 - 0.05, -d / 2 + 0.05, d / 2 - 0.05, h))
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


def _chair(rng: np.random.Generator, style: Style, office: bool = False) -> Item:
    """Four-legged or office chair facing local +y."""
    sw, sd = rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.48)
    sh = rng.uniform(0.43, 0.49)
    item = Item(sw + 0.1, sd + 0.1, sh + 0.45)
    seat = _fabric(rng) if (office or rng.random() < 0.4) else style.wood
    frame = style.wood if rng.random() < 0.6 and not office else _metal(rng, (0.15,) * 3)
    st = rng.uniform(0.04, 0.08)
    item.block(-sw / 2, sw / 2, -sd / 2, sd / 2, sh - st, sh, seat)
    back_h = rng.uniform(0.35, 0.55)
    item.block(-sw / 2, sw / 2, -sd / 2, -sd / 2 + 0.04, sh, sh + back_h, seat)
    if office:
        item.cyl(0.0, 0.0, 0.025, 0.08, sh - st, frame)
        for k in range(5):
            a = 2 * math.pi * k / 5 + rng.uniform(0, 0.5)
            item.boxes.append(
                Box(0.15 * math.cos(a), 0.15 * math.sin(a), 0.06, 0.15, 0.02, 0.02, a, frame)
            )
    else:
        _legs(item, sw, sd, sh - st, frame, rng.uniform(0.025, 0.04), rng.random() < 0.3)
    return item


def _bed(rng: np.random.Generator, style: Style) -> Item:
    """Bed with the headboard at local -y (against a wall) and the foot facing +y."""
    w = rng.choice([0.9, 1.2, 1.4, 1.6, 1.8]) + rng.uniform(0.0, 0.1)
    length = rng.uniform(1.95, 2.15)
    item = Item(w + 0.06, length + 0.05, 1.0)
    base_h, top_h = rng.uniform(0.2, 0.35), rng.uniform(0.45, 0.62)
    frame = style.wood if rng.random() < 0.7 else _fabric(rng)
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


def _cabinet_item(rng: np.random.Generator, style: Style, tall: bool | None = None) -> Item:
    """Wardrobe, dresser, filing cabinet or nightstand: a box with doors/drawers in front."""
    if tall is None:
        tall = rng.random() < 0.45
    if tall:
        w, d, h = rng.uniform(0.5, 1.4), rng.uniform(0.4, 0.62), rng.uniform(1.6, 2.2)
        nx, ny = int(rng.integers(1, 4)), int(rng.choice([1, 1, 2]))
    else:
        w, d, h = rng.uniform(0.4, 1.4), rng.uniform(0.35, 0.55), rng.uniform(0.5, 1.05)
        nx, ny = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    item = Item(w, d, h)
    woody = rng.random() < 0.5
    mat = _cabinet(rng, nx, ny, woody=woody)
    item.block(-w / 2, w / 2, -d / 2, d / 2, 0.0, h, mat)
    if not tall:
        item.supports.append(Support(-w / 2 + 0.03, w / 2 - 0.03, -d / 2 + 0.03, d / 2 - 0.03, h))
    return item


def _shelf(rng: np.random.Generator, style: Style) -> Item:
    """Open bookcase: sides, back, shelves, with a row of books (or boxes) on each shelf."""
    w, d, h = rng.uniform(0.6, 1.3), rng.uniform(0.25, 0.4), rng.uniform(0.9, 2.1)
    item = Item(w, d, h)
    mat = style.wood if rng.random() < 0.6 else _plastic(rng, (0.9, 0.9, 0.88), 0.1)
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
        item.supports.append(Support(-w / 2 + 0.03, w / 2 - 0.03, -d / 2 + 0.03, d / 2 - 0.03, h))
    return item


def _sofa(rng: np.random.Generator, style: Style) -> Item:
    """Sofa or armchair facing local +y."""
    seats = int(rng.choice([1, 2, 3, 3]))
    w = seats * rng.uniform(0.55, 0.7) + 0.4
    d, h = rng.uniform(0.8, 0.98), rng.uniform(0.75, 0.92)
    item = Item(w, d, h)
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


def _tv_stand(rng: np.random.Generator, style: Style) -> Item:
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


def _storage_stack(rng: np.random.Generator, style: Style) -> Item:
    """Stacked plastic boxes or cardboard boxes."""
    w, d = rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.45)
    n = int(rng.integers(1, 4))
    z = 0.0
    item = Item(w, d, 0.0)
    for _ in range(n):
        hz = rng.uniform(0.2, 0.35)
        col = _pick(rng, [(0.62, 0.48, 0.32), (0.25, 0.4, 0.75), (0.85, 0.85, 0.85)])
        item.block(-w / 2, w / 2, -d / 2, d / 2, z, z + hz, _plastic(rng, col, 0.15))
        z += hz
    item.h = z
    return item


def _plant(rng: np.random.Generator, style: Style) -> Item:
    """A potted plant on the floor (crude: pot plus a foliage cylinder)."""
    r = rng.uniform(0.12, 0.2)
    item = Item(2 * r + 0.2, 2 * r + 0.2, 1.0)
    item.cyl(0.0, 0.0, r, 0.0, r * 1.8, _plastic(rng, (0.65, 0.35, 0.2)))
    top = r * 1.8 + rng.uniform(0.4, 1.1)
    item.cyl(0.0, 0.0, 0.015, r * 1.8, top - 0.1, _wood(rng))
    _foliage(rng, item, 0.0, 0.0, r * 1.8 + 0.1, top, r + 0.15)
    return item


def _foliage(rng: np.random.Generator, item: Item, x: float, y: float, z0: float, z1: float,
             spread: float) -> None:  # fmt: skip
    """A bushy clump of small, randomly turned leaf boxes between heights z0 and z1."""
    leaves = _mat(rng, _FOLIAGE, _jitter(rng, (0.5, 0.7, 0.4), 0.1))
    n = int(rng.integers(6, 11))
    for k in range(n):
        zc = z0 + (z1 - z0) * (k + rng.uniform(0.2, 0.8)) / n
        reach = spread * (0.4 + 0.6 * math.sin(math.pi * (zc - z0) / max(z1 - z0, 1e-3)))
        dx, dy = rng.uniform(-reach, reach, 2)
        hx, hy, hz = rng.uniform(0.05, 0.18), rng.uniform(0.03, 0.12), rng.uniform(0.04, 0.12)
        item.boxes.append(
            Box(x + dx, y + dy, zc, hx, hy, hz, rng.uniform(-math.pi, math.pi), leaves)
        )


def _floor_lamp(rng: np.random.Generator, style: Style) -> Item:
    """Floor lamp: base, pole, shade."""
    item = Item(0.4, 0.4, 1.6)
    m = _metal(rng, (0.2, 0.2, 0.2) if rng.random() < 0.5 else None)
    item.cyl(0.0, 0.0, 0.15, 0.0, 0.03, m)
    h = rng.uniform(1.4, 1.75)
    item.cyl(0.0, 0.0, 0.015, 0.03, h - 0.2, m)
    item.cyl(0.0, 0.0, rng.uniform(0.16, 0.24), h - 0.3, h, _fabric(rng, (0.9, 0.86, 0.74)))
    return item


def _fridge(rng: np.random.Generator, style: Style) -> Item:
    """Fridge: a tall white or steel box with two doors."""
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.72), rng.uniform(1.5, 1.9)
    item = Item(w, d, h)
    col = (0.93, 0.93, 0.92) if rng.random() < 0.5 else (0.7, 0.71, 0.72)
    item.block(-w / 2, w / 2, -d / 2, d / 2, 0.0, h, _cabinet(rng, 1, 2, col=col, woody=False))
    return item


def _counter_run(rng: np.random.Generator, style: Style, length: float) -> Item:
    """Kitchen counter along a wall: base cabinets, a worktop and sometimes wall cabinets."""
    d, h = rng.uniform(0.58, 0.65), rng.uniform(0.88, 0.94)
    item = Item(length, d, h)
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
    item.supports.append(
        Support(-length / 2 + 0.05, length / 2 - 0.05, -d / 2 + 0.05, d / 2 - 0.1, h)
    )
    return item


def _pole(rng: np.random.Generator, style: Style) -> Item:
    """A floor-to-ceiling column (basements, offices)."""
    r = rng.uniform(0.05, 0.15)
    item = Item(2 * r, 2 * r, 3.5)
    m = _metal(rng, (0.25, 0.25, 0.27)) if rng.random() < 0.5 else _paint(rng)
    item.cyl(0.0, 0.0, r, 0.0, 3.5, m)
    return item


# Furniture by the names the room types use; each takes (rng, style) and returns an Item.
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
