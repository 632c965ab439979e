"""Small things (books, mugs, bottles, boxes, a laptop, a plant, a lamp) in a row on a
table, desk, shelf or counter top."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dpde_cli.data.synthetic._materials import (
    _PLASTICS,
    _fabric,
    _jitter,
    _mat,
    _metal,
    _pick,
    _plastic,
)
from dpde_cli.data.synthetic._scene import _BOOKS, _FOLIAGE, _SCREEN

if TYPE_CHECKING:  # the builder puts a row on every support it places
    from dpde_cli.data.synthetic._builder import Builder, Support


def _tabletop_row(
    b: Builder,
    sup: Support,
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
