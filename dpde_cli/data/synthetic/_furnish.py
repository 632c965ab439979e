"""Furnishing a room: the room types (how likely each is, which furniture it gets), and
placing that furniture against the walls and free-standing, with chairs around tables and
sometimes a rug."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dpde_cli.data.synthetic._builder import (
    Builder,
    Item,
    Placed,
    Rect,
    WallSpan,
    _footprint,
    _wall_frame,
    _wall_spot,
)
from dpde_cli.data.synthetic._furniture import _TEMPLATES, Style, _chair, _counter_run
from dpde_cli.data.synthetic._materials import _CARPETS, _FABRICS, _jitter, _mat, _pick
from dpde_cli.data.synthetic._scene import _CARPET


class RoomType(NamedTuple):
    """A kind of room: its probability among rooms and the relative weights of its furniture
    by template name (0: never drawn; :func:`_place_furniture` gives every bedroom its bed
    and every kitchen its counter first)."""

    p: float
    items: dict[str, float]


_ROOM_TYPES = {
    "living": RoomType(
        0.2,
        {
            "sofa": 3,
            "low_table": 2,
            "tv": 2,
            "shelf": 2,
            "cabinet": 1,
            "plant": 1,
            "lamp": 1,
            "chair": 1,
        },
    ),
    "bedroom": RoomType(
        0.2,
        {"bed": 0, "cabinet": 3, "desk": 1.5, "shelf": 1, "lamp": 0.5, "plant": 0.5, "chair": 0.5},
    ),
    "office": RoomType(
        0.15,
        {"desk": 4, "cabinet": 2, "shelf": 1.5, "storage": 1, "plant": 0.5, "table": 0.5},
    ),
    "kitchen": RoomType(0.15, {"counter": 0, "table": 2, "fridge": 1, "cabinet": 1, "chair": 0.5}),
    "dining": RoomType(0.1, {"table": 3, "cabinet": 2, "shelf": 1, "plant": 1}),
    "basement": RoomType(
        0.1,
        {"shelf": 3, "storage": 3, "table": 1.5, "cabinet": 1, "pole": 1, "chair": 0.5},
    ),
    "study": RoomType(0.1, {"table": 3, "desk": 2, "shelf": 1.5, "cabinet": 1}),
}

# at most one per room
_UNIQUE_ITEMS = {"bed", "tv", "fridge", "counter"}

# free-standing unless also in _WALL_ITEMS (then half the time); the rest go by a wall
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


def _place_furniture(b: Builder, kind: str, style: Style) -> list[Placed]:
    """Wall-aligned and free-standing furniture for a room type, without overlaps, and
    sometimes a rug. Returns the items placed against a wall."""
    rng, room = b.rng, b.room
    W, D = room[0], room[1]
    weights = _ROOM_TYPES[kind].items
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
    on_walls: list[Placed] = []
    for name in wanted:
        against_wall = name not in _CENTRE_ITEMS or (name in _WALL_ITEMS and rng.random() < 0.5)
        if name == "counter":
            wall = int(rng.integers(4))
            length = _wall_frame(room, wall).length
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
                b.wall_spans[wall].append(WallSpan(s - item.w / 2, s + item.w / 2, 0.0, item.h))
                on_walls.append(Placed(item, x, y, yaw))
            if (name in ("table", "low_table") and not against_wall) or name == "desk":
                _chairs_around(
                    b, item, x, y, yaw, style, office=kind == "office", desk=name == "desk"
                )
            break
    _rug(b)
    return on_walls


def _rug(b: Builder) -> None:
    """Sometimes a rug on the floor, where one fits."""
    rng, (W, D, _) = b.rng, b.room
    if rng.random() < 0.35 and W > 1.9 and D > 1.5:
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


def _chairs_around(
    b: Builder, table: Item, x: float, y: float, yaw: float, style: Style, office: bool, desk: bool
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
        shrink = Rect(rect.x0 + 0.15, rect.y0 + 0.15, rect.x1 - 0.15, rect.y1 - 0.15)
        occupied, b.occupied = b.occupied, b.occupied[:-1]
        ok = b.free(shrink, margin=0.0)
        b.occupied = occupied
        if ok and b.free(rect, margin=-0.3):
            b.place(chair, cx, cy, cyaw)
