"""Clutter: the bins, cartons and bags on the floor of every furnished room, and what
``SceneConfig.clutter`` adds (fuller tables and shelves, piles of boxes, loaded racks,
partitions, ceiling ducts and pipes, things hung on walls) and ``SceneConfig.workstations``
adds (open-plan office desks with cubicle panels)."""

from __future__ import annotations

import functools
import math

import numpy as np

from dpde_cli.data.synthetic._builder import (
    Builder,
    Item,
    PlacedSupport,
    Rect,
    WallSpan,
    _footprint,
    _place_anywhere,
    _wall_box,
    _wall_frame,
)
from dpde_cli.data.synthetic._furniture import Style, _chair, _legs, _table
from dpde_cli.data.synthetic._materials import (
    _PLASTICS,
    _cabinet,
    _fabric,
    _jitter,
    _metal,
    _pick,
    _plastic,
    _wood,
)
from dpde_cli.data.synthetic._tabletop import _tabletop_row


def _floor_clutter(b: Builder) -> None:
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
            item = Item(2 * r, 2 * r, h)
            item.cyl(0.0, 0.0, r, 0.0, h, _plastic(rng) if rng.random() < 0.6 else _metal(rng))
        elif kind == "stool":
            item = Item(0.4, 0.4, 0.5)
            r, h = rng.uniform(0.15, 0.2), rng.uniform(0.45, 0.7)
            item.cyl(0.0, 0.0, r, h - 0.04, h, _wood(rng))
            _legs(item, 2 * r * 0.8, 2 * r * 0.8, h - 0.04, _metal(rng, (0.2,) * 3), 0.025, True)
        else:
            hx, hy = rng.uniform(0.12, 0.35), rng.uniform(0.1, 0.3)
            hz = rng.uniform(0.1, 0.3) if kind != "bag" else rng.uniform(0.12, 0.25)
            item = Item(2 * hx, 2 * hy, 2 * hz)
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


def _more_clutter(b: Builder, rng: np.random.Generator, level: float, kind: str) -> None:
    """What real rooms have and tidy renders lack (``SceneConfig.clutter``): fuller tables
    and shelves, piles of boxes, loaded racks, partitions, ceiling ducts and pipes, things
    hung on walls. ``level`` scales how much; the draws come from their own generator, so
    the rest of the scene is the one drawn without clutter."""
    busy = 2.0 if kind in ("basement", "office") else 1.0
    for sup, x, y, yaw, end in list(b.supports):  # fill rows on tables, desks and shelves
        if rng.random() < min(1.0, level):
            count = int(rng.integers(1, 2 + round(6 * level)))
            _tabletop_row(b, sup, x, y, yaw, rng, end + rng.uniform(0.03, 0.15), count)
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


_CARTON = (0.62, 0.48, 0.32)

_TUBS = [_CARTON, _CARTON, (0.25, 0.4, 0.75), (0.85, 0.85, 0.85), (0.75, 0.8, 0.85), (0.2,) * 3]


def _box_pile(rng: np.random.Generator) -> Item:
    """A pile of cartons and plastic tubs: one to three columns of one to four boxes, each
    box a little off-centre and turned on the one below."""
    item = Item(0.0, 0.0, 0.0)
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
    item.d = 2 * max(abs(part.y) + part.hy for part in item.boxes) + 0.1
    return item


def _rack(rng: np.random.Generator) -> Item:
    """Open metal storage shelving (boards metal or wood), its shelves loaded with boxes and
    tubs of different sizes: the deep, broken-up surface of a basement or store room."""
    w, d, h = rng.uniform(0.8, 1.8), rng.uniform(0.35, 0.6), rng.uniform(1.4, 2.1)
    item = Item(w, d, h)
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


def _partition(rng: np.random.Generator) -> Item:
    """A free-standing screen or cubicle panel (straight or L-shaped): a depth edge in the
    middle of the room with the room visible above and beside it."""
    w, h, t = rng.uniform(0.8, 2.4), rng.uniform(1.1, 1.9), rng.uniform(0.04, 0.08)
    col = _pick(rng, [(0.55, 0.56, 0.58), (0.35, 0.4, 0.5), (0.75, 0.72, 0.66), (0.45, 0.3, 0.2)])
    panel = _fabric(rng, col) if rng.random() < 0.7 else _plastic(rng, (0.9, 0.9, 0.88), 0.1)
    item = Item(w, t, h)
    item.block(-w / 2, w / 2, -t / 2, t / 2, 0.0, h, panel)
    if rng.random() < 0.4:  # an L: a second panel at one end
        r = rng.uniform(0.6, 1.5)
        end = w / 2 * float(rng.choice([-1.0, 1.0]))
        item.block(end - t / 2, end + t / 2, t / 2, t / 2 + r, 0.0, h, panel)
        item.d = 2 * (r + t)
    return item


def _workstation(rng: np.random.Generator) -> Item:
    """An open-plan office desk: a cubicle panel along its back (often another at one side,
    sometimes a shelf on the panel), a monitor, an office chair pulled up in front. The
    desk's top is a support for a row of things."""
    style = Style(_wood(rng))
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
    x0, y0, x1, y1 = item.bounds()  # side panel and chair base included
    item.shift(-(x0 + x1) / 2, -(y0 + y1) / 2)  # centre the parts on the footprint
    item.w, item.d = x1 - x0, y1 - y0
    return item


def _workstations(b: Builder, rng: np.random.Generator, mean: float, camera: np.ndarray) -> None:
    """About ``mean`` workstations (:func:`_workstation`), half with the panel against a wall,
    half free-standing across the room, none within 1 m of the camera; desks filled."""
    cam_x, cam_y = float(camera[0]), float(camera[1])

    def fits(rect: Rect) -> bool:
        x0, y0, x1, y1 = rect
        near = x0 - 1 < cam_x < x1 + 1 and y0 - 1 < cam_y < y1 + 1
        return not near and b.free(rect, 0.1)

    for _ in range(int(rng.poisson(mean))):
        item = _workstation(rng)
        supports, item.supports = item.supports, []  # filled below from this generator
        spot = _place_anywhere(b, item, rng, 0.5, 0.05, fits)
        if spot is not None:
            for sup in supports:
                b.supports.append(PlacedSupport(sup, *spot, _tabletop_row(b, sup, *spot, rng)))


def _ceiling_runs(b: Builder, rng: np.random.Generator) -> None:
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


def _hung_on_walls(b: Builder, rng: np.random.Generator) -> None:
    """Coats, bags and towels hung on walls: soft lumps standing off the wall."""
    for _ in range(int(rng.integers(1, 4))):
        wall = int(rng.integers(4))
        length = _wall_frame(b.room, wall).length
        w = rng.uniform(0.25, 0.55)
        if length < w + 0.4:
            continue
        s0 = rng.uniform(0.2, length - w - 0.2)
        z1 = rng.uniform(1.5, 1.9)
        z0 = z1 - rng.uniform(0.3, 0.9)
        if not b.wall_free(wall, s0, s0 + w, z0, z1):
            continue
        _wall_box(b, wall, s0, s0 + w, z0, z1, rng.uniform(0.08, 0.25), _fabric(rng), True)
        b.wall_spans[wall].append(WallSpan(s0, s0 + w, z0, z1))
