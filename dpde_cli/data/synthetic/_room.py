"""The room shell: floor, ceiling and wall materials; on the walls baseboards, doors (or
an opening into an adjacent space, the annex), windows with curtains and radiators,
pictures and wall shelves, sockets and switches; ceiling lights and basement joists."""

from __future__ import annotations

import math

import numpy as np

from dpde_cli.data.synthetic._builder import (
    Builder,
    Rect,
    WallSpan,
    _wall_box,
    _wall_frame,
    _wall_point,
)
from dpde_cli.data.synthetic._furniture import _TEMPLATES, Style
from dpde_cli.data.synthetic._materials import (
    _CARPETS,
    _PLASTICS,
    _WALL_COLOURS,
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
from dpde_cli.data.synthetic._scene import (
    _BOOKS,
    _CARPET,
    _CONCRETE,
    _LIGHT,
    _M_P1,
    _M_SCALE,
    _PICTURE,
    _TILE,
    _WINDOW,
)


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


def _decorate_walls(b: Builder, kind: str, walls: list[np.ndarray]) -> None:
    """Baseboards, door(s) or an opening into an annex, windows (with curtains, radiators);
    records the wall spans they block. ``walls``: the four walls' materials."""
    _baseboards(b)
    _doors(b, kind, walls)
    _windows(b, kind)


def _baseboards(b: Builder) -> None:
    """Sometimes a baseboard along all four walls."""
    rng, room = b.rng, b.room
    if rng.random() < 0.6:
        mat = _paint(rng, (0.95, 0.95, 0.93)) if rng.random() < 0.6 else _wood(rng)
        h = rng.uniform(0.06, 0.12)
        for wall in range(4):
            _wall_box(b, wall, 0.0, _wall_frame(room, wall).length, 0.0, h, 0.012, mat)


def _doors(b: Builder, kind: str, walls: list[np.ndarray]) -> None:
    """One or two doors, or instead (once per room) an opening into the annex, with the
    floor in front of each kept clear."""
    rng, room = b.rng, b.room
    hc = room[2]
    for _ in range(int(rng.choice([1, 1, 1, 2]))):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall).length
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
        b.wall_spans[wall].append(WallSpan(s0 - 0.1, s0 + w + 0.1, 0.0, 3.0))
        x, y, _ = _wall_point(room, wall, s0 + w / 2, 0.5)
        b.occupied.append(Rect(x - 0.5, y - 0.5, x + 0.5, y + 0.5))


def _windows(b: Builder, kind: str) -> None:
    """Windows on free wall spans (high and few in basements), each with a sill, perhaps
    curtains or a radiator, and a light shining in."""
    rng, room = b.rng, b.room
    hc = room[2]
    n_win = int(rng.choice([0, 1, 1, 2, 2, 3])) if kind != "basement" else int(rng.integers(0, 2))
    for _ in range(n_win):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall).length
        w = rng.uniform(0.6, min(2.2, length - 0.6))
        if w < 0.5:
            continue
        s0 = rng.uniform(0.3, length - w - 0.3)
        if any(s0 < t.s1 and t.s0 < s0 + w for t in b.wall_spans[wall]):
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
        b.wall_spans[wall].append(WallSpan(s0 - 0.05, s0 + w + 0.05, sill - 0.05, top))
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


def _doorway(
    b: Builder,
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
                Rect(
                    min(hinge[0], c[0] * 2 - hinge[0]) - 0.05,
                    min(hinge[1], c[1] * 2 - hinge[1]) - 0.05,
                    max(hinge[0], c[0] * 2 - hinge[0]) + 0.05,
                    max(hinge[1], c[1] * 2 - hinge[1]) + 0.05,
                )
            )
    style = Style(_wood(rng))
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
    b: Builder, wall: int, s0: float, w: float, sill: float, top: float, kind: str
) -> None:
    """Curtains beside a window and/or a radiator under it."""
    rng, room = b.rng, b.room
    yaw = _wall_frame(room, wall).yaw
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
            b.wall_spans[wall].append(WallSpan(a0, a1, bottom, z1))
    if kind != "basement" and rng.random() < 0.3 and sill > 0.6:
        rw = w * rng.uniform(0.5, 0.9)
        r0 = s0 + (w - rw) / 2
        fins = _cabinet(rng, max(1, int(rw / 0.05)), 1, (0.93, 0.93, 0.92), woody=False)
        x, y, _ = _wall_point(room, wall, r0 + rw / 2, 0.08)
        b.box((x, y, (0.15 + sill - 0.1) / 2), (rw / 2, 0.04, (sill - 0.25) / 2), yaw, fins)
        b.wall_spans[wall].append(WallSpan(r0, r0 + rw, 0.0, sill))


def _pictures(b: Builder, kind: str) -> None:
    """Pictures, posters or a whiteboard on free wall spans above furniture."""
    rng, room = b.rng, b.room
    for _ in range(int(rng.choice([0, 1, 2, 2, 3, 4]))):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall).length
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
            b.wall_spans[wall].append(WallSpan(s0, s0 + w, zc - 0.05, zc + 0.35))
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
        b.wall_spans[wall].append(WallSpan(s0, s0 + w, z0, z1))


def _wall_fittings(b: Builder) -> None:
    """Sockets, switches and the odd thermostat or vent: small things of standard size at
    standard heights on free wall spans."""
    rng, room = b.rng, b.room
    plate = _plastic(rng, (0.93, 0.92, 0.9) if rng.random() < 0.8 else (0.6, 0.6, 0.6), 0.3)
    for _ in range(int(rng.integers(1, 7))):
        wall = int(rng.integers(4))
        length = _wall_frame(room, wall).length
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


def _ceiling_lights(b: Builder, drop: float = 0.0) -> None:
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


def _joists(b: Builder) -> None:
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
