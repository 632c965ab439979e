"""Surface geometry at the ray hits (torch): normals, texture coordinates in metres and
face-local coordinates on the room's faces, boxes and cylinders."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dpde_cli.data.synthetic._raycast import _Packed
from dpde_cli.data.synthetic._scene import _FACE_CEIL, _FACE_NORTH, _FACE_SOUTH, _N_ROOM


@dataclass
class _Surface:
    """Per-pixel surface data (B, P, ...): world normal, texture coordinates (u horizontal,
    v vertical or second horizontal axis, metres), face-local coordinates in [-1, 1] along
    u and v, the face half sizes (metres), and whether the face is an item's front."""

    normal: Tensor
    uv: Tensor
    fab: Tensor
    half: Tensor
    front: Tensor


def _gather(table: Tensor, idx: Tensor) -> Tensor:
    """Rows of a (B, N, C) table at indices (B, P) -> (B, P, C)."""
    return torch.gather(table, 1, idx[..., None].expand(-1, -1, table.shape[-1]))


def _room_surface(pt: Tensor, face: Tensor, room: Tensor) -> _Surface:
    """Surface data on the room's (and annex's) floor, ceiling and walls."""
    face = face % 6
    normals = torch.tensor(
        [[0, 0, 1], [0, 0, -1], [0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]],
        dtype=pt.dtype,
        device=pt.device,
    )
    n = normals[face]
    x, y, z = pt.unbind(-1)
    w, d, h = (room[:, None, k].expand_as(x) for k in range(3))
    horizontal = face <= _FACE_CEIL
    along_x = horizontal | (face == _FACE_SOUTH) | (face == _FACE_NORTH)
    u = torch.where(along_x, x, y)
    v = torch.where(horizontal, y, z)
    hu = torch.where(along_x, w, d) / 2
    hv = torch.where(horizontal, d, h) / 2
    uv = torch.stack([u, v], -1)
    half = torch.stack([hu, hv], -1)
    return _Surface(n, uv, uv / half - 1.0, half, torch.zeros_like(horizontal))


def _box_surface(pt: Tensor, box: Tensor) -> _Surface:
    """Surface data on the hit box faces; box (B, P, 7) is each pixel's box."""
    cy, sy = torch.cos(box[..., 6]), torch.sin(box[..., 6])
    rel = pt - box[..., 0:3]
    lx = cy * rel[..., 0] + sy * rel[..., 1]
    ly = cy * rel[..., 1] - sy * rel[..., 0]
    local = torch.stack([lx, ly, rel[..., 2]], -1)
    h = box[..., 3:6]
    q = local / h
    axis = q.abs().argmax(-1)
    sign = torch.sign(torch.gather(q, -1, axis[..., None])[..., 0])
    n_local = torch.nn.functional.one_hot(axis, 3).to(pt.dtype) * sign[..., None]
    n = torch.stack(
        [
            cy * n_local[..., 0] - sy * n_local[..., 1],
            sy * n_local[..., 0] + cy * n_local[..., 1],
            n_local[..., 2],
        ],
        -1,
    )
    # face axes: x-faces -> (y, z), y-faces -> (x, z), z-faces -> (x, y)
    ia = torch.where(axis == 0, 1, 0)
    ib = torch.where(axis == 2, 1, 2)
    ab = torch.stack([ia, ib], -1)
    coords = torch.gather(local, -1, ab)
    half = torch.gather(h, -1, ab)
    front = (axis == 1) & (sign > 0)
    return _Surface(n, coords + half, coords / half, half, front)


def _cyl_surface(pt: Tensor, cyl: Tensor) -> _Surface:
    """Surface data on the hit cylinders; cyl (B, P, 5) is each pixel's cylinder."""
    x = pt[..., 0] - cyl[..., 0]
    y = pt[..., 1] - cyl[..., 1]
    r, z0, z1 = cyl[..., 2], cyl[..., 3], cyl[..., 4]
    z = pt[..., 2]
    rad = torch.sqrt(x * x + y * y).clamp(min=1e-9)
    top = (z - z1).abs() < 1e-3
    bottom = (z - z0).abs() < 1e-3
    cap = (top | bottom) & (rad < r * 0.999)
    zero = torch.zeros_like(x)
    n_side = torch.stack([x / rad, y / rad, zero], -1)
    n_cap = torch.stack([zero, zero, torch.where(top, 1.0, -1.0)], -1)
    n = torch.where(cap[..., None], n_cap, n_side)
    ang = torch.atan2(y, x)
    u = torch.where(cap, x + r, (ang + math.pi) * r)
    v = torch.where(cap, y + r, z - z0)
    hz = (z1 - z0) / 2
    hu = torch.where(cap, r, math.pi * r)
    hv = torch.where(cap, r, hz)
    uv = torch.stack([u, v], -1)
    half = torch.stack([hu, hv], -1)
    return _Surface(n, uv, uv / half - 1.0, half, torch.zeros_like(cap))


def _surface(pt: Tensor, sid: Tensor, p: _Packed) -> _Surface:
    """Per-pixel surface data for all hits (room, boxes, cylinders)."""
    n_b = p.boxes.shape[1]
    is_box = (sid >= _N_ROOM) & (sid < _N_ROOM + n_b)
    is_cyl = sid >= _N_ROOM + n_b
    room = _room_surface(pt, sid.clamp(max=_N_ROOM - 1), p.room)
    box = _box_surface(pt, _gather(p.boxes, (sid - _N_ROOM).clamp(0, n_b - 1)))
    cyl = _cyl_surface(pt, _gather(p.cyls, (sid - _N_ROOM - n_b).clamp(0, p.cyls.shape[1] - 1)))

    def pick(name: str) -> Tensor:
        a, b_, c = getattr(room, name), getattr(box, name), getattr(cyl, name)
        mb, mc = is_box, is_cyl
        if a.dim() == 3:
            mb, mc = mb[..., None], mc[..., None]
        return torch.where(mc, c, torch.where(mb, b_, a))

    return _Surface(*(pick(f) for f in ("normal", "uv", "fab", "half", "front")))
