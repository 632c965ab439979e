"""Ray casting in torch (any device): packing scenes, tiled culling, the nearest hits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dpde_cli.data.synthetic._scene import (
    _FACE_CEIL,
    _FACE_EAST,
    _FACE_FLOOR,
    _FACE_NORTH,
    _FACE_SOUTH,
    _FACE_WEST,
    _MAT_COLS,
    _N_ROOM,
    _WALL_FACES,
    Scene,
)

# --------------------------------------------------------------------------------------
# Ray casting (torch, any device)
# --------------------------------------------------------------------------------------

_FAR = 1e5  # where padded (absent) primitives live; never the nearest hit
_EPS = 1e-4
_TILE_PX = 16  # pixels per tile side; primitives are culled per tile
_PAIR_CHUNK = 1 << 20  # (tile, primitive) pairs x tile pixels evaluated at once


@dataclass
class _Packed:
    """The scenes of a batch as padded tensors on the device (see :class:`Scene`)."""

    room: Tensor  # (B, 3)
    cam_pos: Tensor  # (B, 3)
    cam_rot: Tensor  # (B, 3, 3)
    intrinsics: Tensor  # (B, 4)
    boxes: Tensor  # (B, Nb, 7)
    cyls: Tensor  # (B, Nc, 5)
    box_casts: Tensor  # (B, Nb) bool, False where padded
    cyl_casts: Tensor  # (B, Nc) bool
    materials: Tensor  # (B, 6 + Nb + Nc, _MAT_COLS)
    lights: Tensor  # (B, Nl, 11), zero power where padded
    ambient: Tensor  # (B,)
    annex: Tensor  # (B, 11)
    seeds: Tensor  # (B, 1) int64


@dataclass
class _Tiles:
    """Pixel layout used while rendering: the image padded to whole tiles, pixels ordered
    tile by tile (tile-major, then row-major inside a tile)."""

    height: int
    width: int
    rows: int  # tiles down
    cols: int  # tiles across
    u: Tensor  # (P,) pixel x, P = rows * cols * _TILE_PX**2
    v: Tensor  # (P,) pixel y

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def to_image(self, x: Tensor) -> Tensor:
        """(B, P, C) in tile order -> (B, C, H, W) cropped to the image."""
        b, _, c = x.shape
        x = x.reshape(b, self.rows, self.cols, _TILE_PX, _TILE_PX, c).permute(0, 5, 1, 3, 2, 4)
        x = x.reshape(b, c, self.rows * _TILE_PX, self.cols * _TILE_PX)
        return x[:, :, : self.height, : self.width]


def _make_tiles(height: int, width: int, device: torch.device) -> _Tiles:
    """Tile layout of an image of (height, width) pixels."""
    rows, cols = -(-height // _TILE_PX), -(-width // _TILE_PX)
    ty, tx, py, px = torch.meshgrid(
        *(torch.arange(n, device=device) for n in (rows, cols, _TILE_PX, _TILE_PX)), indexing="ij"
    )
    u = (tx * _TILE_PX + px).reshape(-1).float()
    v = (ty * _TILE_PX + py).reshape(-1).float()
    return _Tiles(height, width, rows, cols, u, v)


def _pad(arrays: list[np.ndarray], fill: np.ndarray) -> np.ndarray:
    """Stack (Ni, C) arrays into (B, max Ni, C), padding rows with ``fill`` (C,)."""
    n = max(1, max(a.shape[0] for a in arrays))
    out = np.tile(fill.astype(np.float64), (len(arrays), n, 1))
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


def _pack(scenes: list[Scene], device: torch.device) -> _Packed:
    """Pad a batch of scenes and move it to ``device`` as float32."""
    box_fill = np.array([_FAR, _FAR, _FAR, 1e-3, 1e-3, 1e-3, 0.0])
    cyl_fill = np.array([_FAR, _FAR, 1e-3, _FAR, _FAR + 1e-3])
    nb = max(1, max(len(s.boxes) for s in scenes))
    nc = max(1, max(len(s.cylinders) for s in scenes))
    mats = np.zeros((len(scenes), _N_ROOM + nb + nc, _MAT_COLS))
    box_casts = np.zeros((len(scenes), nb), bool)
    cyl_casts = np.zeros((len(scenes), nc), bool)
    for i, s in enumerate(scenes):
        m_b, m_c = len(s.boxes), len(s.cylinders)
        mats[i, : _N_ROOM + m_b] = s.materials[: _N_ROOM + m_b]
        mats[i, _N_ROOM + nb : _N_ROOM + nb + m_c] = s.materials[_N_ROOM + m_b :]
        box_casts[i, :m_b], cyl_casts[i, :m_c] = s.box_casts, s.cyl_casts
    light_fill = np.array([0.0, 0.0, 1.0, 0, 0, 0, 0, 0, -1, 0, 0.1])

    def t(a, dtype=torch.float32) -> Tensor:
        return torch.as_tensor(np.asarray(a), dtype=dtype).to(device)

    return _Packed(
        room=t([s.room for s in scenes]),
        cam_pos=t([s.cam_pos for s in scenes]),
        cam_rot=t([s.cam_rot for s in scenes]),
        intrinsics=t([s.intrinsics for s in scenes]),
        boxes=t(_pad([s.boxes for s in scenes], box_fill)),
        cyls=t(_pad([s.cylinders for s in scenes], cyl_fill)),
        box_casts=t(box_casts, torch.bool),
        cyl_casts=t(cyl_casts, torch.bool),
        materials=t(mats),
        lights=t(_pad([s.lights for s in scenes], light_fill)),
        ambient=t([s.ambient for s in scenes]),
        annex=t([s.annex for s in scenes]),
        seeds=t([[s.seed & 0x7FFFFFFF] for s in scenes], torch.int64),
    )


def _camera_rays(p: _Packed, tiles: _Tiles) -> Tensor:
    """World directions (B, P, 3) of the pixel rays, scaled so that the distance t along a
    ray is the camera z (depth). Pixel (u, v) has its centre at (u, v)."""
    k = p.intrinsics[:, None, :]
    x = (tiles.u[None] - k[..., 2]) / k[..., 0]
    y = (tiles.v[None] - k[..., 3]) / k[..., 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    return d_cam @ p.cam_rot.transpose(1, 2)


def _exit_box(o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Exit distance (B, P) of rays from an axis-aligned box (B, 3) lo-hi and the face
    (``_FACE_*``) they leave through; o (B, 1, 3), d (B, P, 3)."""
    bound = torch.where(d > 0, hi[:, None, :], lo[:, None, :])
    t_axis = (bound - o) / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t, axis = t_axis.min(dim=-1)
    positive = torch.gather(d, -1, axis[..., None])[..., 0] > 0
    face_of = torch.tensor(
        [_FACE_WEST, _FACE_EAST, _FACE_SOUTH, _FACE_NORTH, _FACE_FLOOR, _FACE_CEIL], device=d.device
    )
    return t, face_of[axis * 2 + positive.long()]


def _intersect_room(o: Tensor, d: Tensor, room: Tensor, annex: Tensor) -> tuple[Tensor, Tensor]:
    """Distance at which rays from inside the room leave it (through the opening into the
    annex: where they leave the annex) and the face hit.

    Args:
        o: (B, 1, 3) origins inside the room.
        d: (B, P, 3) directions.
        room: (B, 3) W, D, H_c.
        annex: (B, 11) see :class:`Scene`.

    Returns:
        t (B, P) and face index (B, P) int64: ``_FACE_*``, plus 6 for the annex's faces.
    """
    t, face = _exit_box(o, d, torch.zeros_like(room), room)
    if not bool((annex[:, 0] > 0.5).any()):
        return t, face
    zero = torch.zeros_like(annex[:, 0])
    t2, face2 = _exit_box(o, d, torch.stack([annex[:, 1], annex[:, 2], zero], -1), annex[:, 3:6])
    pt = o + t[..., None] * d
    wall = annex[:, 6].long()
    wall_face = torch.tensor(_WALL_FACES, device=d.device)[wall]
    along = torch.where((wall < 2)[:, None], pt[..., 0], pt[..., 1])
    through = (
        (annex[:, 0:1] > 0.5)
        & (face == wall_face[:, None])
        & (along >= annex[:, 7:8])
        & (along <= annex[:, 8:9])
        & (pt[..., 2] <= annex[:, 9:10])
    )
    return torch.where(through, t2, t), torch.where(through, face2 + 6, face)


def _box_hits(o: Tensor, d: Tensor, boxes: Tensor) -> Tensor:
    """Entry distance of rays into yawed boxes (slab test), inf where missed.

    Args:
        o: (K, S or 1, 3) ray origins.
        d: (K, S, 3) ray directions.
        boxes: (K, 7) centre, half extents, yaw: one box per row of rays.

    Returns:
        (K, S) distance in units of |d|; inf for a miss or a box behind the origin.
    """
    cy = torch.cos(boxes[:, None, 6])
    sy = torch.sin(boxes[:, None, 6])
    rel = o - boxes[:, None, 0:3]
    dx, dy = d[..., 0], d[..., 1]
    t_near = t_far = None
    for k in range(3):
        if k == 0:
            ok, dk = cy * rel[..., 0] + sy * rel[..., 1], cy * dx + sy * dy
        elif k == 1:
            ok, dk = cy * rel[..., 1] - sy * rel[..., 0], cy * dy - sy * dx
        else:
            ok, dk = rel[..., 2], d[..., 2]
        inv = 1.0 / (dk + 1e-12)
        centre = -ok * inv
        half = boxes[:, None, 3 + k] * inv.abs()
        lo, hi = centre - half, centre + half
        t_near = lo if t_near is None else torch.maximum(t_near, lo)
        t_far = hi if t_far is None else torch.minimum(t_far, hi)
    hit = (t_near <= t_far) & (t_near > _EPS)
    return torch.where(hit, t_near, torch.full_like(t_near, math.inf))


def _cyl_hits(o: Tensor, d: Tensor, cyls: Tensor) -> Tensor:
    """Entry distance of rays into vertical cylinders (side or caps), inf where missed.

    Args:
        o: (K, S or 1, 3) origins; d: (K, S, 3); cyls: (K, 5) x, y, r, z0, z1.

    Returns:
        (K, S) distance in units of |d|.
    """
    ox = o[..., 0] - cyls[:, None, 0]
    oy = o[..., 1] - cyls[:, None, 1]
    oz = o[..., 2]
    r, z0, z1 = cyls[:, None, 2], cyls[:, None, 3], cyls[:, None, 4]
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    a = dx * dx + dy * dy + 1e-12
    bh = ox * dx + oy * dy
    disc = bh * bh - a * (ox * ox + oy * oy - r * r)
    t_side = (-bh - torch.sqrt(disc.clamp(min=0.0))) / a
    z_side = oz + t_side * dz
    ok_side = (disc >= 0) & (t_side > _EPS) & (z_side >= z0) & (z_side <= z1)
    dz_safe = torch.where(dz.abs() < 1e-12, torch.full_like(dz, 1e-12), dz)
    t_cap = torch.where(dz < 0, z1 - oz, z0 - oz) / dz_safe
    xc, yc = ox + t_cap * dx, oy + t_cap * dy
    ok_cap = (t_cap > _EPS) & (xc * xc + yc * yc <= r * r)
    inf = torch.full_like(t_side, math.inf)
    return torch.minimum(torch.where(ok_side, t_side, inf), torch.where(ok_cap, t_cap, inf))


def _box_sdf(q: Tensor, boxes: Tensor) -> Tensor:
    """Signed distance (K, S) from points q (K, S, 3) to yawed boxes (K, 7)."""
    cy, sy = torch.cos(boxes[:, None, 6]), torch.sin(boxes[:, None, 6])
    rel = q - boxes[:, None, 0:3]
    lx = (cy * rel[..., 0] + sy * rel[..., 1]).abs() - boxes[:, None, 3]
    ly = (cy * rel[..., 1] - sy * rel[..., 0]).abs() - boxes[:, None, 4]
    lz = rel[..., 2].abs() - boxes[:, None, 5]
    out = torch.sqrt(lx.clamp(min=0) ** 2 + ly.clamp(min=0) ** 2 + lz.clamp(min=0) ** 2)
    return out + torch.maximum(torch.maximum(lx, ly), lz).clamp(max=0)


def _cyl_sdf(q: Tensor, cyls: Tensor) -> Tensor:
    """Signed distance (K, S) from points q (K, S, 3) to vertical cylinders (K, 5)."""
    x, y = q[..., 0] - cyls[:, None, 0], q[..., 1] - cyls[:, None, 1]
    dr = torch.sqrt(x * x + y * y) - cyls[:, None, 2]
    dz = torch.maximum(cyls[:, None, 3] - q[..., 2], q[..., 2] - cyls[:, None, 4])
    out = torch.sqrt(dr.clamp(min=0) ** 2 + dz.clamp(min=0) ** 2)
    return out + torch.maximum(dr, dz).clamp(max=0)


def _bounds(p: _Packed) -> tuple[Tensor, Tensor]:
    """Bounding spheres of all primitives, boxes first: centres (B, N, 3), radii (B, N)."""
    bc, br = p.boxes[..., 0:3], p.boxes[..., 3:6].norm(dim=-1)
    cz = (p.cyls[..., 3] + p.cyls[..., 4]) / 2
    cc = torch.stack([p.cyls[..., 0], p.cyls[..., 1], cz], -1)
    cr = torch.sqrt(p.cyls[..., 2] ** 2 + ((p.cyls[..., 4] - p.cyls[..., 3]) / 2) ** 2)
    return torch.cat([bc, cc], 1), torch.cat([br, cr], 1)


def _corners(p: _Packed) -> Tensor:
    """The 8 corners (B, N, 8, 3) of every primitive's (cylinders: axis-aligned) box."""
    signs = torch.tensor(
        [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
        dtype=torch.float32,
        device=p.boxes.device,
    )
    cy, sy = torch.cos(p.boxes[..., 6:7]), torch.sin(p.boxes[..., 6:7])
    loc = signs * p.boxes[..., None, 3:6]
    box = (
        torch.stack(
            [cy * loc[..., 0] - sy * loc[..., 1], sy * loc[..., 0] + cy * loc[..., 1], loc[..., 2]],
            -1,
        )
        + p.boxes[..., None, 0:3]
    )
    r = p.cyls[..., 2]
    half = torch.stack([r, r, (p.cyls[..., 4] - p.cyls[..., 3]) / 2], -1)
    centre = torch.stack(
        [p.cyls[..., 0], p.cyls[..., 1], (p.cyls[..., 3] + p.cyls[..., 4]) / 2], -1
    )
    return torch.cat([box, centre[..., None, :] + signs * half[..., None, :]], 1)


def _present(p: _Packed) -> Tensor:
    """(B, N) whether each primitive slot holds a real primitive (not padding)."""
    return torch.cat([p.boxes[..., 0], p.cyls[..., 0]], 1) < _FAR / 2


def _view_pairs(p: _Packed, tiles: _Tiles) -> Tensor:
    """(tile, primitive) pairs where the primitive's projection can cover the tile.

    Returns:
        (K, 3) int64 rows (batch, tile, primitive), primitives numbered boxes first.
    """
    corners = _corners(p)  # (B, N, 8, 3)
    cam = (corners - p.cam_pos[:, None, None, :]) @ p.cam_rot[:, None]  # camera coords
    z = cam[..., 2]
    k = p.intrinsics[:, None, None, :]
    zc = z.clamp(min=1e-3)
    u, v = k[..., 0] * cam[..., 0] / zc + k[..., 2], k[..., 1] * cam[..., 1] / zc + k[..., 3]
    behind = (z < 0.02).any(-1)  # straddles the camera plane: assume it covers everything
    big = torch.full_like(behind, 1e9, dtype=u.dtype)
    u0 = torch.where(behind, -big, u.amin(-1)) - 1.0
    u1 = torch.where(behind, big, u.amax(-1)) + 1.0
    v0 = torch.where(behind, -big, v.amin(-1)) - 1.0
    v1 = torch.where(behind, big, v.amax(-1)) + 1.0
    in_front = (z > 0.02).any(-1) & _present(p)
    ty = torch.arange(tiles.rows, device=u.device).repeat_interleave(tiles.cols) * _TILE_PX
    tx = torch.arange(tiles.cols, device=u.device).repeat(tiles.rows) * _TILE_PX
    hit = (
        (u1[:, None] >= tx[None, :, None])
        & (u0[:, None] <= tx[None, :, None] + _TILE_PX - 1)
        & (v1[:, None] >= ty[None, :, None])
        & (v0[:, None] <= ty[None, :, None] + _TILE_PX - 1)
        & in_front[:, None]
    )
    return torch.nonzero(hit)


def _tile_spheres(pt: Tensor, tiles: _Tiles) -> tuple[Tensor, Tensor]:
    """Bounding spheres of the surface points of each tile: centres (B, T, 3), radii (B, T)."""
    q = pt.reshape(pt.shape[0], tiles.count, _TILE_PX * _TILE_PX, 3)
    lo, hi = q.amin(2), q.amax(2)
    return (lo + hi) / 2, (hi - lo).norm(dim=-1) / 2


def _segment_pairs(
    centre: Tensor, radius: Tensor, target: Tensor, target_r: Tensor, p: _Packed, casters: Tensor
) -> Tensor:
    """(tile, primitive) pairs where a caster may cut segments from a tile's points (sphere
    centre (B, T, 3), radius (B, T)) to a light (B, 3) of radius (B,).

    Returns:
        (K, 3) int64 rows (batch, tile, primitive).
    """
    pc, pr = _bounds(p)
    seg = target[:, None, :] - centre  # (B, T, 3)
    rel = pc[:, None, :, :] - centre[:, :, None, :]  # (B, T, N, 3)
    s = (rel * seg[:, :, None, :]).sum(-1) / (seg * seg).sum(-1, keepdim=True).clamp(min=1e-9)
    s = s.clamp(0.0, 1.0)
    dist = (rel - s[..., None] * seg[:, :, None, :]).norm(dim=-1)
    reach = torch.maximum(radius, target_r[:, None])[..., None] + pr[:, None, :] + 0.01
    return torch.nonzero((dist < reach) & casters[:, None, :])


def _near_pairs(
    centre: Tensor, radius: Tensor, reach: float, p: _Packed, casters: Tensor
) -> Tensor:
    """(tile, primitive) pairs with a caster within ``reach`` metres of a tile's points."""
    pc, pr = _bounds(p)
    dist = (pc[:, None, :, :] - centre[:, :, None, :]).norm(dim=-1)
    near = dist < radius[..., None] + pr[:, None, :] + reach
    return torch.nonzero(near & casters[:, None, :])


def _pair_reduce(
    pairs: Tensor,
    p: _Packed,
    tiles: _Tiles,
    fn,
    want_index: bool = False,
    lanes_per_tile: int = _TILE_PX * _TILE_PX,
):
    """Minimum over (tile, primitive) pairs of a per-pixel quantity.

    Args:
        pairs: (K, 3) rows (batch, tile, primitive); primitives numbered boxes first.
        p: the packed scenes.
        tiles: the pixel layout.
        fn: fn(b, t, prims, is_box) -> (k, S) values for pairs of one kind, with b, t the
            batch and tile indices (k,), prims (k, 7) boxes or (k, 5) cylinders.
        want_index: also return the primitive index achieving the minimum.
        lanes_per_tile: S, the samples per tile fn returns (all pixels, or a subset).

    Returns:
        (B, T * S) minimum (inf where no pair), and with ``want_index`` (B, T * S) int64
        index.
    """
    b_n, s_n = p.boxes.shape[0], lanes_per_tile
    n_box = p.boxes.shape[1]
    best = torch.full((b_n * tiles.count * s_n,), math.inf, device=p.boxes.device)
    lanes = torch.arange(s_n, device=best.device)
    chunk = max(1, _PAIR_CHUNK // s_n)
    results = []
    for is_box in (True, False):
        sel = pairs[(pairs[:, 2] < n_box) == is_box]
        for start in range(0, sel.shape[0], chunk):
            bi, ti, ni = sel[start : start + chunk].unbind(1)
            prims = p.boxes[bi, ni] if is_box else p.cyls[bi, ni - n_box]
            val = fn(bi, ti, prims, is_box)
            flat = ((bi * tiles.count + ti) * s_n)[:, None] + lanes
            best.scatter_reduce_(0, flat.reshape(-1), val.reshape(-1), "amin")
            if want_index:
                results.append((flat, val, ni))
    best_bp = best.reshape(b_n, -1)
    if not want_index:
        return best_bp
    index = torch.full_like(best, 1 << 30, dtype=torch.int64)
    for flat, val, ni in results:
        cand = torch.where(val == best[flat], ni[:, None].expand_as(val), 1 << 30)
        index.scatter_reduce_(0, flat.reshape(-1), cand.reshape(-1), "amin")
    return best_bp, index.reshape(b_n, -1)


def _tile_rays(x: Tensor, tiles: _Tiles, b: Tensor, t: Tensor) -> Tensor:
    """Rows of a per-pixel (B, T * S, C) tensor for pairs' (batch, tile): (k, S, C)."""
    return x.reshape(x.shape[0], tiles.count, -1, x.shape[-1])[b, t]


_HALF = _TILE_PX // 2


def _subsample(x: Tensor, tiles: _Tiles) -> Tensor:
    """Every other pixel of every other row inside each tile: (B, P, C) -> (B, P / 4, C)."""
    b, _, c = x.shape
    x = x.reshape(b, tiles.count, _HALF, 2, _HALF, 2, c)[:, :, :, 0, :, 0]
    return x.reshape(b, -1, c)


def _upsample(sub: Tensor, depth: Tensor, normal: Tensor, tiles: _Tiles) -> Tensor:
    """Joint-bilateral upsampling of a per-tile half-resolution quantity to all pixels.

    Args:
        sub: (B, P / 4) values at the :func:`_subsample` pixels.
        depth: (B, P) full-resolution depth guiding the weights.
        normal: (B, P, 3) full-resolution normals guiding the weights.
        tiles: the pixel layout.

    Returns:
        (B, P) values: bilinear, with neighbours on other surfaces (depth or normal
        differs) weighted down.
    """
    b = sub.shape[0]
    shape = (b, tiles.count, _TILE_PX, _TILE_PX)
    t_full, n_full = depth.reshape(shape), normal.reshape(*shape, 3)
    s_val = sub.reshape(b, tiles.count, _HALF, _HALF)
    s_t, s_n = t_full[:, :, ::2, ::2], n_full[:, :, ::2, ::2]
    idx = torch.arange(_TILE_PX, device=sub.device)
    num = torch.zeros(shape, device=sub.device)
    den = torch.zeros(shape, device=sub.device)
    for dy in (0, 1):
        iy = (idx // 2 + dy).clamp(max=_HALF - 1)
        wy = torch.where(idx % 2 == 1, 0.5, 1.0 - dy)
        for dx in (0, 1):
            ix = (idx // 2 + dx).clamp(max=_HALF - 1)
            wx = torch.where(idx % 2 == 1, 0.5, 1.0 - dx)
            w_bil = wy[:, None] * wx[None, :]
            c_val = s_val[:, :, iy][:, :, :, ix]
            c_t = s_t[:, :, iy][:, :, :, ix]
            c_n = s_n[:, :, iy][:, :, :, ix]
            rel = (c_t - t_full) / (0.02 * t_full + 0.01)
            agree = (c_n * n_full).sum(-1).clamp(min=0.0) ** 4
            w = w_bil * (torch.exp(-rel * rel) * agree + 1e-4)
            num, den = num + w * c_val, den + w
    return (num / den.clamp(min=1e-12)).reshape(b, -1)


def _trace(o: Tensor, d: Tensor, p: _Packed, tiles: _Tiles) -> tuple[Tensor, Tensor]:
    """Nearest surface along the camera rays.

    Returns:
        depth t (B, P) and surface id (B, P): 0-11 room and annex faces, then 12 + box
        index, then 12 + Nb + cylinder index.
    """
    t, sid = _intersect_room(o, d, p.room, p.annex)

    def hits(b, ti, prims, is_box):
        return (_box_hits if is_box else _cyl_hits)(o[b], _tile_rays(d, tiles, b, ti), prims)

    tp, ip = _pair_reduce(_view_pairs(p, tiles), p, tiles, hits, want_index=True)
    closer = tp < t
    return torch.where(closer, tp, t), torch.where(closer, ip + _N_ROOM, sid)
