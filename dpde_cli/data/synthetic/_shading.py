"""Procedural textures in world metres and lighting (soft shadows, ambient occlusion)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dpde_cli.data.synthetic._raycast import (
    _HALF,
    _box_hits,
    _box_sdf,
    _cyl_hits,
    _cyl_sdf,
    _near_pairs,
    _Packed,
    _pair_reduce,
    _segment_pairs,
    _subsample,
    _tile_rays,
    _tile_spheres,
    _Tiles,
    _upsample,
)
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
    _M_OFF,
    _M_P1,
    _M_P2,
    _M_SCALE,
    _M_SCALE2,
    _M_TYPE,
    _MAT_COLS,
    _METAL,
    _N_TYPES,
    _PAINT,
    _PICTURE,
    _PLASTIC,
    _SCREEN,
    _TILE,
    _WINDOW,
    _WOOD,
    SceneConfig,
)
from dpde_cli.data.synthetic._surface import _Surface

# Procedural textures (world metres, anti-aliased against the pixel footprint)
# --------------------------------------------------------------------------------------

_HASH_MULS = (-1640531535, 1013904223, -2048144789, 668265263, -1028477387, 374761393)


def _shr(h: Tensor, n: int) -> Tensor:
    """Logical right shift of int32 ``h`` by ``n`` bits."""
    return (h >> n) & ((1 << (32 - n)) - 1)


def _hash(*ints: Tensor | int) -> Tensor:
    """Integer hash of integer tensors (broadcast) to float32 in [0, 1).

    int32 arithmetic that wraps on overflow, so the result is the same on every device.
    """
    h = None
    for k, x in enumerate(ints):
        x = x.to(torch.int32) if isinstance(x, Tensor) else torch.tensor(x, dtype=torch.int32)
        term = x * _HASH_MULS[k % len(_HASH_MULS)]
        h = term if h is None else (h ^ term)
        h = (h ^ _shr(h, 15)) * 0x2C1B3C6D
        h = (h ^ _shr(h, 12)) * 0x297A2D39
        h = h ^ _shr(h, 15)
    return _shr(h, 8).to(torch.float32) * (1.0 / (1 << 24))


def _value_noise(u: Tensor, v: Tensor, salt: int) -> Tensor:
    """Smooth 2-D value noise of unit lattice spacing, in [-1, 1]."""
    fu, fv = torch.floor(u), torch.floor(v)
    su, sv = u - fu, v - fv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)
    iu, iv = fu.long(), fv.long()
    n00, n10 = _hash(iu, iv, salt), _hash(iu + 1, iv, salt)
    n01, n11 = _hash(iu, iv + 1, salt), _hash(iu + 1, iv + 1, salt)
    top = n00 + (n10 - n00) * su
    bot = n01 + (n11 - n01) * su
    return (top + (bot - top) * sv) * 2.0 - 1.0


def _fbm(u: Tensor, v: Tensor, w: Tensor, freq: float, octaves: int, salt: int = 0) -> Tensor:
    """Fractal value noise (cycles per metre ``freq``, doubling per octave), in about
    [-1, 1]; octaves whose wavelength is under ~4 pixel footprints ``w`` (metres) fade out,
    so far surfaces lose fine texture as a camera's pixels would average it."""
    total = torch.zeros_like(u)
    amp, norm, f = 1.0, 0.0, freq
    for k in range(octaves):
        fade = (2.0 - 4.0 * w * f).clamp(0.0, 1.0)
        total = total + amp * fade * _value_noise(u * f, v * f, salt * 31 + k)
        norm += amp
        amp *= 0.5
        f *= 2.0
    return total / norm


def _lines(x: Tensor, period: Tensor | float, width: Tensor | float, w: Tensor) -> Tensor:
    """Box-filtered coverage in [0, 1] of lines of ``width`` repeating every ``period`` along
    x (all metres) for pixels of footprint ``w``; tends to width / period when w is large."""
    period = torch.as_tensor(period, dtype=x.dtype, device=x.device)
    hw = torch.as_tensor(width, dtype=x.dtype, device=x.device) / 2
    e = (x / period - torch.round(x / period)).abs() * period
    w = w.clamp(min=1e-5)
    cover = (torch.minimum(e + w / 2, hw) - torch.maximum(e - w / 2, -hw)).clamp(min=0.0) / w
    mean = (2 * hw / period).clamp(max=1.0)
    far = (2.0 * w / period - 1.0).clamp(0.0, 1.0)
    return cover.clamp(0.0, 1.0) * (1 - far) + mean * far


def _mix(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Linear blend a + (b - a) t; t broadcast over the colour channel."""
    return a + (b - a) * (t[..., None] if t.dim() < a.dim() else t)


def _hue_colour(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV (each (N,), in [0, 1]) to RGB (N, 3)."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], -1)
    f = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[..., None] * (1 - s[..., None] * f)


@dataclass
class _TexIn:
    """Texture inputs for N pixels of one material type (all (N, ...))."""

    m: Tensor  # (N, _MAT_COLS)
    u: Tensor  # (N,) metres, with the material's offset
    v: Tensor
    fa: Tensor  # (N,) face-local coordinates in [-1, 1]
    fb: Tensor
    ha: Tensor  # (N,) face half sizes, metres
    hb: Tensor
    front: Tensor  # (N,) bool
    w: Tensor  # (N,) pixel footprint, metres

    @property
    def a(self) -> Tensor:
        return self.m[:, _M_A : _M_A + 3]

    @property
    def b(self) -> Tensor:
        return self.m[:, _M_B : _M_B + 3]


def _tex_paint(t: _TexIn) -> Tensor:
    """Plaster: large soft blotches and a fine roller stipple."""
    n = 0.05 * _fbm(t.u, t.v, t.w, 1.2, 4, 1) + 0.035 * _fbm(t.u, t.v, t.w, 50.0, 2, 2)
    return t.a * (1 + n[:, None])


def _tex_wood(t: _TexIn) -> Tensor:
    """Wood grain; planks with staggered seams when scale > 0."""
    vertical = t.m[:, _M_P1] > 0.5
    along = torch.where(vertical, t.v, t.u)
    across = torch.where(vertical, t.u, t.v)
    has_planks = t.m[:, _M_SCALE] > 0
    pw = torch.where(has_planks, t.m[:, _M_SCALE], torch.full_like(t.u, 1e3))
    pl = torch.where(has_planks, t.m[:, _M_SCALE2], torch.full_like(t.u, 1e3))
    pi = torch.floor(across / pw).long()
    shift = _hash(pi, 11) * pl
    si = torch.floor((along + shift) / pl).long()
    tint = (_hash(pi, si, 12) - 0.5) * 0.3 * has_planks
    warp = _fbm(along * 0.4, across * 4.0 + pi * 7.31, t.w * 4.0, 1.0, 3, 3)
    gf = 20.0 + 12.0 * _hash(pi, si, 13)
    grain = torch.sin(2 * math.pi * (across * gf + 2.0 * warp))
    grain = grain * (2.0 - 4.0 * t.w * gf).clamp(0, 1)
    fine = _fbm(along * 2.0, across * 80.0, t.w * 80.0, 1.0, 2, 4)
    k = (0.5 + 0.4 * grain + 0.5 * warp).clamp(0, 1)
    col = _mix(t.a, t.b, k) * (1 + tint + 0.08 * fine)[:, None]
    seam = torch.maximum(_lines(across, pw, 0.002, t.w), _lines(along + shift, pl, 0.002, t.w))
    return col * (1 - 0.55 * seam * has_planks)[:, None]


def _tex_tile(t: _TexIn) -> Tensor:
    """Tiles of size ``scale`` with grout lines ``scale2`` wide of colour b; speckle p2."""
    s, g = t.m[:, _M_SCALE], t.m[:, _M_SCALE2]
    iu, iv = torch.floor(t.u / s).long(), torch.floor(t.v / s).long()
    jit = (_hash(iu, iv, 21) - 0.5) * 0.08
    speck = t.m[:, _M_P2] * _fbm(t.u, t.v, t.w, 30.0, 3, 5) + 0.04 * _fbm(t.u, t.v, t.w, 2.0, 2, 6)
    col = t.a * (1 + jit + speck)[:, None]
    grout = torch.maximum(_lines(t.u, s, g, t.w), _lines(t.v, s, g, t.w))
    return _mix(col, t.b, grout)


def _tex_carpet(t: _TexIn) -> Tensor:
    """Carpet: fine pile noise, slow variation and optionally a ring pattern (p1)."""
    n = 0.2 * _fbm(t.u, t.v, t.w, 120.0, 2, 7) + 0.08 * _fbm(t.u, t.v, t.w, 2.5, 3, 8)
    col = t.a * (1 + n)[:, None]
    s = t.m[:, _M_SCALE].clamp(min=0.05)
    cu = (t.u / s - torch.floor(t.u / s) - 0.5) * s
    cv = (t.v / s - torch.floor(t.v / s) - 0.5) * s
    ring = _lines(torch.sqrt(cu * cu + cv * cv) - 0.3 * s, 1e3, 0.05 * s, t.w)
    return _mix(col, t.b, 0.7 * ring * (t.m[:, _M_P1] > 0.5))


def _tex_concrete(t: _TexIn) -> Tensor:
    """Concrete: multi-scale blotches, stains of colour b, speckle."""
    n = 0.12 * _fbm(t.u, t.v, t.w, 0.8, 6, 9) + 0.06 * _fbm(t.u, t.v, t.w, 150.0, 1, 10)
    stain = (_fbm(t.u + 13.0, t.v + 7.0, t.w, 0.35, 3, 11) * 2.0).clamp(0, 1)
    return _mix(t.a * (1 + n)[:, None], t.b, 0.6 * stain)


def _tex_fabric(t: _TexIn) -> Tensor:
    """Fabric: weave noise, creases; p1 = 1: stripes of colour b every ``scale`` metres;
    p1 = 2: hanging folds (curtains) every ``scale`` metres."""
    n = 0.06 * _fbm(t.u, t.v, t.w, 15.0, 3, 12) + 0.1 * _fbm(t.u, t.v, t.w, 1.5, 2, 13)
    s = t.m[:, _M_SCALE].clamp(min=0.01)
    kind = t.m[:, _M_P1]
    warp = 0.3 * _fbm(t.u * 2.0, t.v * 0.3, t.w * 2.0, 1.0, 2, 25)
    folds = torch.sin(2 * math.pi * (t.u / s + warp)) * (2.0 - 4.0 * t.w / s).clamp(0, 1)
    n = n + 0.22 * folds * (kind > 1.5)
    col = t.a * (1 + n)[:, None]
    stripes = _lines(t.u, s, 0.4 * s, t.w) * ((kind > 0.5) & (kind < 1.5))
    return _mix(col, t.b, stripes)


def _tex_plastic(t: _TexIn) -> Tensor:
    """Plastic / laminate: nearly flat."""
    return t.a * (1 + 0.025 * _fbm(t.u, t.v, t.w, 4.0, 2, 14))[:, None]


def _tex_metal(t: _TexIn) -> Tensor:
    """Brushed metal: streaks along u."""
    n = 0.06 * _fbm(t.u * 1.0, t.v * 60.0, t.w * 60.0, 1.0, 2, 15)
    return t.a * (1 + n)[:, None]


def _tex_cabinet(t: _TexIn) -> Tensor:
    """Cabinet: body colour (woody when scale > 0); on the front, door/drawer gaps (p1
    columns, p2 rows) and handles of colour b."""
    col = t.a * (1 + 0.03 * _fbm(t.u, t.v, t.w, 3.0, 2, 16))[:, None]
    warp = _fbm(t.u * 0.5, t.v * 6.0, t.w * 6.0, 1.0, 3, 17)
    grain = torch.sin(2 * math.pi * (t.v * 22.0 + 3.0 * warp)) * (2.0 - 88.0 * t.w).clamp(0, 1)
    col = col * (1 + (0.035 * grain + 0.06 * warp) * (t.m[:, _M_SCALE] > 0.5))[:, None]
    nx, ny = t.m[:, _M_P1].clamp(min=1), t.m[:, _M_P2].clamp(min=1)
    a = (t.fa + 1) * t.ha  # metres from the face edge
    b = (t.fb + 1) * t.hb
    cw, ch = 2 * t.ha / nx, 2 * t.hb / ny
    gaps = torch.maximum(_lines(a, cw, 0.004, t.w), _lines(b, ch, 0.004, t.w))
    ca, cb = a / cw - torch.floor(a / cw), b / ch - torch.floor(b / ch)
    col_i = torch.floor(a / cw)
    drawers = ny > 1.5
    hx = torch.where(
        drawers,
        (ca - 0.5).abs() * cw < 0.06,
        (ca - torch.where(col_i % 2 == 0, 0.9, 0.1)).abs() * cw < 0.012,
    )
    hy = torch.where(drawers, (cb - 0.82).abs() * ch < 0.012, (cb - 0.5).abs() * ch < 0.07)
    handle = (hx & hy).float()
    col = col * (1 - 0.6 * gaps * t.front)[:, None]
    return _mix(col, t.b, handle * t.front)


def _tex_books(t: _TexIn) -> Tensor:
    """A row of book spines of random colours and heights on the front face."""
    idx = torch.floor((t.u + 7.0) / 0.03 + 0.6 * _hash(torch.floor(t.u / 0.09).long(), 33)).long()
    hue, sat = _hash(idx, 31), 0.25 + 0.55 * _hash(idx, 32)
    val = 0.25 + 0.6 * _hash(idx, 34)
    col = _hue_colour(hue, sat, val)
    top = (t.fb + 1) / 2 > 0.6 + 0.4 * _hash(idx, 35)
    edge = _lines(t.u + 7.0, 0.03, 0.002, t.w)
    col = col * (1 - 0.5 * edge)[:, None]
    return torch.where((top | ~t.front)[:, None], torch.full_like(col, 0.12), col)


def _tex_foliage(t: _TexIn) -> Tensor:
    """Leaves: high-contrast green noise tinted by a."""
    n = _fbm(t.u, t.v, t.w, 12.0, 3, 18)
    dark = torch.tensor([0.05, 0.09, 0.035], device=t.u.device)
    light = torch.tensor([0.3, 0.4, 0.19], device=t.u.device)
    k = (0.5 + 1.2 * n).clamp(0, 1)
    return (dark + (light - dark) * k[:, None]) * (t.a / t.a.mean(-1, keepdim=True))


def _framed(t: _TexIn, width: Tensor) -> Tensor:
    """Coverage of a frame of ``width`` metres along the face border (and non-front faces)."""
    ea = (1 - t.fa.abs()) * t.ha
    eb = (1 - t.fb.abs()) * t.hb
    edge = torch.minimum(ea, eb)
    inside = ((edge - width) / t.w.clamp(min=1e-5) + 0.5).clamp(0, 1)
    return torch.where(t.front, 1 - inside, torch.ones_like(inside))


def _tex_picture(t: _TexIn) -> tuple[Tensor, Tensor]:
    """Picture / poster (or whiteboard when p1) inside a frame of colour b."""
    c2 = _hue_colour(
        _hash(torch.floor(t.m[:, _M_OFF] * 100).long(), 41),
        0.3 + 0.0 * t.u,
        0.2 + 0.5 * t.m[:, _M_P2],
    )
    n1 = _fbm(t.u, t.v, t.w, 2.5, 4, 19)
    n2 = _fbm(t.u, t.v, t.w, 6.0, 3, 20)
    art = _mix(t.a, c2, (0.5 + n1).clamp(0, 1)) * (1 + 0.3 * n2)[:, None]
    board = torch.full_like(art, 0.9) * (1 - 0.05 * (n2 > 0.3).float())[:, None]
    art = torch.where((t.m[:, _M_P1] > 0.5)[:, None], board, art)
    frame = _framed(t, t.m[:, _M_SCALE])
    return _mix(art, t.b, frame), torch.zeros_like(art)


def _tex_window(t: _TexIn) -> tuple[Tensor, Tensor]:
    """Window glass (emissive: sky over a horizon p2 with blotchy greenery) with a frame
    of colour b and p1 mullions."""
    sky_top = t.a
    horizon = t.m[:, _M_P2]
    ground = (0.35 + 0.25 * _fbm(t.u, t.v, t.w, 3.0, 3, 21))[:, None] * torch.tensor(
        [0.55, 0.7, 0.45], device=t.u.device
    )
    s = ((t.fb - horizon) * 3.0).clamp(0, 1)
    sky = sky_top * (0.85 + 0.15 * s)[:, None]
    trees = (_fbm(t.u, t.v, t.w, 1.5, 3, 22) * 3.0 + (horizon - t.fb) * 4.0).clamp(0, 1)
    glass = _mix(sky, ground, trees)
    frame = _framed(t, t.m[:, _M_SCALE])
    mull = t.m[:, _M_P1]
    mid_a = _lines(t.fa * t.ha, 1e3, 0.04, t.w) * (mull >= 1)
    mid_b = _lines(t.fb * t.hb - 0.2 * t.hb, 1e3, 0.04, t.w) * (mull >= 2)
    frame = torch.maximum(frame, torch.maximum(mid_a, mid_b) * t.front)
    albedo = t.b * frame[:, None]
    emit = glass * (t.m[:, _M_EMIT] * (1 - frame))[:, None]
    return albedo, emit


def _tex_light(t: _TexIn) -> tuple[Tensor, Tensor]:
    """Light fixture: an emissive diffuser with a thin frame of colour b (cylinders: all
    of the surface glows)."""
    frame = _framed(t, 0.015 + 0 * t.u) * (t.ha < 1.0)
    frame = torch.where(t.front | (t.hb < 0.02), frame, torch.zeros_like(frame))
    glow = t.a * (t.m[:, _M_EMIT] * (1 - frame))[:, None]
    return t.b * frame[:, None], glow


def _tex_screen(t: _TexIn) -> tuple[Tensor, Tensor]:
    """Screen: dark glossy panel; when p1 it shows something (emissive) inside a bezel."""
    on = (t.m[:, _M_P1] > 0.5) & t.front
    bezel = _framed(t, 0.012 + 0 * t.u)
    content = _hue_colour(
        _hash(torch.floor(t.m[:, _M_OFF] * 10).long(), 51) + 0 * t.u,
        0.2 + 0.4 * (_fbm(t.u, t.v, t.w, 4.0, 2, 23) > 0).float(),
        0.5 + 0.4 * _fbm(t.u, t.v, t.w, 2.0, 3, 24),
    )
    emit = content * (t.m[:, _M_EMIT] * (1 - bezel) * on)[:, None]
    albedo = t.a * (1 + 0.3 * (t.fb + 1))[:, None]
    return albedo, emit


_TEXTURES = {
    _PAINT: _tex_paint,
    _WOOD: _tex_wood,
    _TILE: _tex_tile,
    _CARPET: _tex_carpet,
    _CONCRETE: _tex_concrete,
    _FABRIC: _tex_fabric,
    _PLASTIC: _tex_plastic,
    _METAL: _tex_metal,
    _CABINET: _tex_cabinet,
    _BOOKS: _tex_books,
    _FOLIAGE: _tex_foliage,
}
_EMISSIVE = {_WINDOW: _tex_window, _PICTURE: _tex_picture, _LIGHT: _tex_light, _SCREEN: _tex_screen}


def _materials(m: Tensor, s: _Surface, w: Tensor) -> tuple[Tensor, Tensor]:
    """Albedo and emission (both (B, P, 3), linear) of every pixel's surface."""
    shape = m.shape[:-1]
    m = m.reshape(-1, _MAT_COLS)
    uv = s.uv.reshape(-1, 2) + m[:, _M_OFF : _M_OFF + 2]
    fab, half = s.fab.reshape(-1, 2), s.half.reshape(-1, 2)
    front, w = s.front.reshape(-1), w.reshape(-1)
    albedo = torch.zeros(m.shape[0], 3, device=m.device)
    emit = torch.zeros_like(albedo)
    kinds = m[:, _M_TYPE].round().long()
    for kind in range(_N_TYPES):
        idx = torch.nonzero(kinds == kind)[:, 0]
        if idx.numel() == 0:
            continue
        t = _TexIn(
            m[idx],
            uv[idx, 0],
            uv[idx, 1],
            fab[idx, 0],
            fab[idx, 1],
            half[idx, 0],
            half[idx, 1],
            front[idx],
            w[idx],
        )
        if kind in _TEXTURES:
            albedo[idx] = _TEXTURES[kind](t).clamp(0.0, 1.0)
        else:
            a, e = _EMISSIVE[kind](t)
            albedo[idx] = a.clamp(0.0, 1.0)
            emit[idx] = e.clamp(min=0.0) ** 2.2
    return (albedo**2.2).reshape(*shape, 3), emit.reshape(*shape, 3)


# --------------------------------------------------------------------------------------
# Lighting
# --------------------------------------------------------------------------------------


_BAYER4 = ((0, 8, 2, 10), (12, 4, 14, 6), (3, 11, 1, 9), (15, 7, 13, 5))


def _sub_grid(x: Tensor, tiles: _Tiles) -> Tensor:
    """Half-resolution values in tile order (B, P / 4, C) -> image grid (B, C, h, w)."""
    b, _, c = x.shape
    x = x.reshape(b, tiles.rows, tiles.cols, _HALF, _HALF, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, tiles.rows * _HALF, tiles.cols * _HALF)


def _sub_tiles(x: Tensor, tiles: _Tiles) -> Tensor:
    """Inverse of :func:`_sub_grid`: (B, C, h, w) -> (B, P / 4, C)."""
    b, c = x.shape[:2]
    x = x.reshape(b, c, tiles.rows, _HALF, tiles.cols, _HALF).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, -1, c)


def _light_samples(seeds: Tensor, tiles: _Tiles, light: int, k: int, n: int) -> Tensor:
    """Points on the unit disc (B, P / 4, 3) (z = 0) for shadow sample k of n at the
    half-resolution pixels: interleaved stratification (each 4 x 4 block of pixels covers
    all 16 n strata of the disc), jittered by a hash of pixel, seed and light, so the
    result is the same on every device."""
    dev = seeds.device
    grid = torch.zeros(1, tiles.rows * _HALF, tiles.cols * _HALF, 2, device=dev)
    grid[..., 0] = torch.arange(grid.shape[1], device=dev)[:, None]
    grid[..., 1] = torch.arange(grid.shape[2], device=dev)[None, :]
    iy, ix = _sub_tiles(grid.permute(0, 3, 1, 2), tiles)[0].long().unbind(-1)
    bayer = torch.tensor(_BAYER4, device=dev)[iy % 4, ix % 4]
    m = bayer + 16 * k
    ring, sector = m % 4, m // 4
    u1 = _hash(iy, ix, seeds, light * 64 + k, 1)
    u2 = _hash(iy, ix, seeds, light * 64 + k, 2)
    turn = _hash(seeds, light, 3)
    r = torch.sqrt((ring + u1) / 4.0)
    a = 2 * math.pi * ((sector + u2) / (4.0 * n) + turn)
    return torch.stack([r * torch.cos(a), r * torch.sin(a), torch.zeros_like(r)], -1)


def _smooth(sub: Tensor, depth: Tensor, normal: Tensor, tiles: _Tiles) -> Tensor:
    """Depth- and normal-aware 5 x 5 filter of half-resolution values (B, P / 4) guided by
    their depth (B, P / 4) and normals (B, P / 4, 3); removes the sampling noise of soft
    shadows without blurring them across object boundaries."""
    val = _sub_grid(sub[..., None], tiles)
    z = _sub_grid(depth[..., None], tiles)
    nrm = _sub_grid(normal, tiles)
    h, w = val.shape[-2:]
    pad = torch.nn.functional.pad
    vp, zp = pad(val, (2, 2, 2, 2), mode="replicate"), pad(z, (2, 2, 2, 2), mode="replicate")
    np_ = pad(nrm, (2, 2, 2, 2), mode="replicate")
    num = torch.zeros_like(val)
    den = torch.zeros_like(val)
    for dy in range(5):
        for dx in range(5):
            near = math.exp(-((dy - 2) ** 2 + (dx - 2) ** 2) / (2 * 1.5**2))
            rel = (zp[..., dy : dy + h, dx : dx + w] - z) / (0.02 * z + 0.01)
            agree = (np_[..., dy : dy + h, dx : dx + w] * nrm).sum(1, keepdim=True).clamp(min=0)
            wgt = near * torch.exp(-rel * rel) * agree**4
            num = num + wgt * vp[..., dy : dy + h, dx : dx + w]
            den = den + wgt
    return _sub_tiles(num / den.clamp(min=1e-9), tiles)[..., 0]


def _casters(p: _Packed) -> Tensor:
    """(B, N) primitives that cast shadows and occlude ambient light, boxes first."""
    return torch.cat([p.box_casts, p.cyl_casts], 1)


def _visibility(origin: Tensor, target: Tensor, pairs: Tensor, p: _Packed, tiles: _Tiles) -> Tensor:
    """(B, Q) float, 1 where the segments origin -> target (B, Q, 3) are unobstructed; Q
    is P or P / 4 (the :func:`_subsample` pixels)."""
    seg = target - origin
    lanes = origin.shape[1] // tiles.count

    def hits(b, ti, prims, is_box):
        o, s = _tile_rays(origin, tiles, b, ti), _tile_rays(seg, tiles, b, ti)
        return (_box_hits if is_box else _cyl_hits)(o, s, prims)

    return (_pair_reduce(pairs, p, tiles, hits, lanes_per_tile=lanes) >= 1.0).float()


def _direct_light(
    pt: Tensor,
    n: Tensor,
    view: Tensor,
    gloss: Tensor,
    depth: Tensor,
    p: _Packed,
    tiles: _Tiles,
    cfg: SceneConfig,
) -> Tensor:
    """Diffuse irradiance plus gloss-weighted Blinn-Phong highlights from all lights, with
    soft shadows (stratified shadow rays to each light's disc, traced at a quarter of the
    pixels, filtered and upsampled along depth and normals); (B, P, 3). The Lambert 1/pi is folded
    into the light power."""
    total = torch.zeros_like(pt)
    origin = _subsample(pt + n * 2e-3, tiles)
    depth_sub, n_sub = _subsample(depth[..., None], tiles)[..., 0], _subsample(n, tiles)
    centre, radius = _tile_spheres(pt, tiles)
    casters = _casters(p)
    for li in range(p.lights.shape[1]):
        light = p.lights[:, li]
        pos, power = light[:, None, 0:3], light[:, None, 3:6]
        direction, expo, radius_l = light[:, None, 6:9], light[:, None, 9:10], light[:, 10]
        to_l = pos - pt
        r2 = (to_l * to_l).sum(-1, keepdim=True).clamp(min=0.04)
        ldir = to_l / torch.sqrt(r2)
        cos = (n * ldir).sum(-1, keepdim=True).clamp(min=0.0)
        lobe = torch.pow((-ldir * direction).sum(-1, keepdim=True).clamp(min=0.0), expo)
        half = ldir + view
        half = half / half.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        spec = torch.pow((n * half).sum(-1, keepdim=True).clamp(min=0.0), 60.0) * (cos > 0)
        vis = torch.ones_like(cos)
        if cfg.shadows and cfg.shadow_samples > 0:
            lit = casters & (power.abs().sum(-1) > 0)
            pairs = _segment_pairs(centre, radius, light[:, 0:3], radius_l, p, lit)
            vis_sub = torch.zeros_like(origin[..., 0])
            for k in range(cfg.shadow_samples):
                jitter = _light_samples(p.seeds, tiles, li, k, cfg.shadow_samples)
                target = pos + jitter * radius_l[:, None, None]
                vis_sub = vis_sub + _visibility(origin, target, pairs, p, tiles)
            vis_sub = _smooth(vis_sub / cfg.shadow_samples, depth_sub, n_sub, tiles)
            vis = _upsample(vis_sub, depth, n, tiles)[..., None]
        total = total + power * lobe * vis / r2 * (cos + 4.0 * gloss * spec)
    return total


_AO_STEPS = ((0.04, 0.4), (0.12, 0.35), (0.3, 0.25))  # (distance along the normal m, weight)


def _ambient_occlusion(pt: Tensor, n: Tensor, p: _Packed, tiles: _Tiles) -> Tensor:
    """Ambient visibility in [0, 1] (B, P, 1) from the scene SDF sampled along the normal
    (darkens corners, creases and contact regions)."""
    centre, radius = _tile_spheres(pt, tiles)
    pairs = _near_pairs(centre, radius, _AO_STEPS[-1][0], p, _casters(p))
    occ = torch.zeros(pt.shape[:-1], device=pt.device)
    room = p.room[:, None, :]
    a_lo = torch.stack([p.annex[:, 1], p.annex[:, 2], torch.zeros_like(p.annex[:, 0])], -1)[:, None]
    a_hi = p.annex[:, None, 3:6]
    has_annex = p.annex[:, None, 0] > 0.5
    for h, weight in _AO_STEPS:
        q = pt + n * h
        inside = torch.minimum(q, room - q).amin(-1)
        inside_annex = torch.minimum(q - a_lo, a_hi - q).amin(-1)
        inside = torch.where(has_annex, torch.maximum(inside, inside_annex), inside)

        def sdf(b, ti, prims, is_box, q=q):
            return (_box_sdf if is_box else _cyl_sdf)(_tile_rays(q, tiles, b, ti), prims)

        dist = torch.minimum(inside, _pair_reduce(pairs, p, tiles, sdf))
        occ = occ + weight * ((h - dist) / h).clamp(0.0, 1.0)
    return (1.0 - 0.75 * occ).clamp(0.0, 1.0)[..., None]


# --------------------------------------------------------------------------------------
