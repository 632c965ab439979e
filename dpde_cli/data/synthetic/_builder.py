"""Putting a scene together: furniture items and their parts, the builder that collects a
scene's primitives, and where things may go (free floor, free wall spans, spots by a wall).

Item frame: origin at the footprint centre on the floor, the front facing local +y, width
along local x. Wall frame: a distance ``s`` along a wall from its origin (walls 0 south,
1 north, 2 west, 3 east), heights ``z`` above the floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from dpde_cli.data.synthetic._tabletop import _tabletop_row


class Box(NamedTuple):
    """A box part of an item (item frame): centre, half extents, yaw about z, material row."""

    x: float
    y: float
    z: float
    hx: float
    hy: float
    hz: float
    yaw: float
    mat: np.ndarray


class Cylinder(NamedTuple):
    """A vertical cylinder part of an item (item frame): axis at (x, y), radius, z range."""

    x: float
    y: float
    r: float
    z0: float
    z1: float
    mat: np.ndarray


class Support(NamedTuple):
    """A rectangle at height ``z`` (item frame) that small things can stand on in a row."""

    x0: float
    x1: float
    y0: float
    y1: float
    z: float


class Rect(NamedTuple):
    """An axis-aligned floor rectangle (world metres)."""

    x0: float
    y0: float
    x1: float
    y1: float


class WallSpan(NamedTuple):
    """A rectangle on a wall that something covers: [s0, s1] along it, [z0, z1] high."""

    s0: float
    s1: float
    z0: float
    z1: float


class Pose(NamedTuple):
    """Where an item stands: its origin (x, y) in the world and its yaw, radians."""

    x: float
    y: float
    yaw: float


class PlacedSupport(NamedTuple):
    """A support of a placed item, the item's pose and where its row of things ends (local
    x), so that clutter can continue the row."""

    support: Support
    x: float
    y: float
    yaw: float
    end: float


class Placed(NamedTuple):
    """An item placed against a wall, with its pose (yaw faces into the room)."""

    item: Item
    x: float
    y: float
    yaw: float


class WallFrame(NamedTuple):
    """A wall's origin on the floor (xy), unit direction along it, the yaw of an item that
    stands with its back to it, and its length."""

    origin: np.ndarray
    along: np.ndarray
    yaw: float
    length: float


class WallSpot(NamedTuple):
    """A spot for an item with its back to a wall: world (x, y), yaw, the wall and the
    distance ``s`` along it."""

    x: float
    y: float
    yaw: float
    wall: int
    s: float


@dataclass
class Item:
    """A furniture item in its own frame (see the module docstring): width ``w`` (local x),
    depth ``d`` (local y), height ``h``; parts; supports for the small things put on it."""

    w: float
    d: float
    h: float
    boxes: list[Box] = field(default_factory=list)
    cyls: list[Cylinder] = field(default_factory=list)
    supports: list[Support] = field(default_factory=list)

    def block(self, x0, x1, y0, y1, z0, z1, mat, yaw=0.0) -> None:
        """Add a box given by its extents in the item frame."""
        self.boxes.append(
            Box(
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
        self.cyls.append(Cylinder(x, y, r, z0, z1, mat))

    def add(self, other: Item, x: float, y: float, turned: bool = False) -> None:
        """Add another item's parts with its origin at (x, y), turned half round (to face
        local -y) when ``turned``. Its supports are not added."""
        k, turn = (-1.0, math.pi) if turned else (1.0, 0.0)
        for p in other.boxes:
            self.boxes.append(p._replace(x=x + k * p.x, y=y + k * p.y, yaw=p.yaw + turn))
        for p in other.cyls:
            self.cyls.append(p._replace(x=x + k * p.x, y=y + k * p.y))

    def bounds(self) -> Rect:
        """The floor rectangle its parts cover, turned boxes included."""
        xs, ys = [], []
        for p in self.boxes:
            c, s = abs(math.cos(p.yaw)), abs(math.sin(p.yaw))
            rx, ry = p.hx * c + p.hy * s, p.hx * s + p.hy * c
            xs += [p.x - rx, p.x + rx]
            ys += [p.y - ry, p.y + ry]
        for p in self.cyls:
            xs += [p.x - p.r, p.x + p.r]
            ys += [p.y - p.r, p.y + p.r]
        return Rect(min(xs), min(ys), max(xs), max(ys))

    def shift(self, dx: float, dy: float) -> None:
        """Move every part and support by (dx, dy) in the item frame (to centre the parts
        on the footprint)."""
        self.boxes = [p._replace(x=p.x + dx, y=p.y + dy) for p in self.boxes]
        self.cyls = [p._replace(x=p.x + dx, y=p.y + dy) for p in self.cyls]
        self.supports = [
            Support(u.x0 + dx, u.x1 + dx, u.y0 + dy, u.y1 + dy, u.z) for u in self.supports
        ]


class Builder:
    """Accumulates the primitives, materials and lights of one scene, and what is taken:
    floor rectangles, wall spans, supports (with their rows of things)."""

    def __init__(self, rng: np.random.Generator, room: np.ndarray) -> None:
        self.rng = rng
        self.room = room
        self.boxes: list[tuple] = []  # rows of Scene.boxes
        self.box_mats: list[np.ndarray] = []
        self.box_casts: list[bool] = []
        self.cyls: list[tuple] = []  # rows of Scene.cylinders
        self.cyl_mats: list[np.ndarray] = []
        self.cyl_casts: list[bool] = []
        self.lights: list[np.ndarray] = []
        self.occupied: list[Rect] = []
        self.wall_spans: list[list[WallSpan]] = [[], [], [], []]
        self.supports: list[PlacedSupport] = []
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

    def free(self, rect: Rect, margin: float = 0.05) -> bool:
        """Whether an axis-aligned floor rectangle is inside the room and unoccupied."""
        x0, y0, x1, y1 = rect
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.room[0] + 1e-6 or y1 > self.room[1] + 1e-6:
            return False
        for o in self.occupied:
            if (
                x0 < o.x1 + margin
                and o.x0 < x1 + margin
                and y0 < o.y1 + margin
                and o.y0 < y1 + margin
            ):
                return False
        return True

    def wall_free(self, wall: int, s0: float, s1: float, z0: float, z1: float) -> bool:
        """Whether the span [s0, s1] x [z0, z1] of a wall (along it, height) is clear of the
        doors, windows, furniture and pictures recorded on it."""
        return not any(
            s0 < t.s1 and t.s0 < s1 and z0 < t.z1 and t.z0 < z1 for t in self.wall_spans[wall]
        )

    def place(self, item: Item, x: float, y: float, yaw: float, casts=True) -> None:
        """Add an item's parts at (x, y) with a yaw, record its footprint, and put a row of
        small things on each of its supports."""
        c, s = math.cos(yaw), math.sin(yaw)
        for p in item.boxes:
            centre = (x + c * p.x - s * p.y, y + s * p.x + c * p.y, p.z)
            self.box(centre, (p.hx, p.hy, p.hz), yaw + p.yaw, p.mat, casts)
        for p in item.cyls:
            self.cyl(x + c * p.x - s * p.y, y + s * p.x + c * p.y, p.r, p.z0, p.z1, p.mat, casts)
        self.occupied.append(_footprint(item, x, y, yaw))
        for sup in item.supports:
            self.supports.append(PlacedSupport(sup, x, y, yaw, _tabletop_row(self, sup, x, y, yaw)))


def _footprint(item: Item, x: float, y: float, yaw: float) -> Rect:
    """Axis-aligned floor rectangle covering a yawed item."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    ex, ey = c * item.w / 2 + s * item.d / 2, s * item.w / 2 + c * item.d / 2
    return Rect(x - ex, y - ey, x + ex, y + ey)


def _wall_frame(room: np.ndarray, wall: int) -> WallFrame:
    """A wall's origin, direction, facing yaw and length (see :class:`WallFrame`)."""
    W, D = room[0], room[1]
    if wall == 0:  # south, y = 0
        return WallFrame(np.array([0.0, 0.0]), np.array([1.0, 0.0]), 0.0, W)
    if wall == 1:  # north, y = D
        return WallFrame(np.array([0.0, D]), np.array([1.0, 0.0]), math.pi, W)
    if wall == 2:  # west, x = 0
        return WallFrame(np.array([0.0, 0.0]), np.array([0.0, 1.0]), -math.pi / 2, D)
    return WallFrame(np.array([W, 0.0]), np.array([0.0, 1.0]), math.pi / 2, D)


def _wall_point(room: np.ndarray, wall: int, s: float, off: float) -> Pose:
    """World (x, y) of a point s along a wall and off metres into the room, with the yaw
    of an item standing there with its back to the wall."""
    o, u, yaw, _ = _wall_frame(room, wall)
    normal = np.array([-math.sin(yaw), math.cos(yaw)])
    p = o + u * s + normal * off
    return Pose(float(p[0]), float(p[1]), yaw)


def _wall_box(
    b: Builder,
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


def _wall_spot(
    b: Builder, item: Item, rng: np.random.Generator, wall: int | None = None
) -> WallSpot | None:
    """One try at a spot for an item with its back to a wall (a random wall unless given),
    or None where the wall is too short or something already stands there. Floor space is
    the caller's to check."""
    wall = int(rng.integers(4)) if wall is None else wall
    length = _wall_frame(b.room, wall).length
    if length < item.w + 0.1:
        return None
    s = rng.uniform(item.w / 2 + 0.02, length - item.w / 2 - 0.02)
    if not b.wall_free(wall, s - item.w / 2, s + item.w / 2, 0.0, item.h):
        return None
    x, y, yaw = _wall_point(b.room, wall, s, item.d / 2 + rng.uniform(0.0, 0.04))
    return WallSpot(x, y, yaw, wall, s)


def _place_anywhere(
    b: Builder,
    item: Item,
    rng: np.random.Generator,
    wall_prob: float,
    yaw_sd: float,
    fits: Callable[[Rect], bool],
) -> Pose | None:
    """Place an item in up to 12 tries: with its back to a random wall (probability
    ``wall_prob``; the wall span is then recorded) or free-standing at a right angle (plus
    noise of ``yaw_sd`` radians), where ``fits`` accepts its floor rectangle. Returns its
    pose, or None where no try fitted."""
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
            b.wall_spans[wall].append(WallSpan(s - item.w / 2, s + item.w / 2, 0.0, item.h))
        return Pose(x, y, yaw)
    return None
