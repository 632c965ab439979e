"""Procedural indoor scenes with exact metric depth: a training set, test data, README example.

A scene is sampled on the CPU from a numpy ``Generator`` seeded with the scene's seed (room,
furniture, materials, lights, camera, sensor), so its layout never depends on the device. It
is then ray cast in torch on any device: analytic ray-plane, ray-box (slab) and vertical
ray-cylinder intersections for all pixels against all primitives at once, nearest hit wins.
Textures are procedural and defined in world metres on each surface, so their density falls
with distance and the mapping is perspective-correct; octaves finer than the pixel footprint
are faded out (anti-aliasing). Shading is Lambertian (+ a little Blinn-Phong gloss) from
ceiling lights and windows with 1/r^2 fall-off, soft shadows from jittered shadow rays, an
SDF-based ambient occlusion and a hemisphere ambient term; then a simulated camera (auto
exposure, white balance, vignetting, gamma, blur, noise, JPEG, sometimes the white/black
border NYUv2 frames have).

Frames:
    World: metres, x east, y north, z up; the room is the box [0, W] x [0, D] x [0, H_c].
    Camera: OpenCV (x right, y down, z forward). Depth is z in the camera frame, metres.

Example:
    >>> sample = render_scene(7, SceneConfig(height=120, width=160))
    >>> sample["image"].shape, sample["depth"].shape
    (torch.Size([3, 120, 160]), torch.Size([1, 120, 160]))
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dpde_cli.data._common import scale_intrinsics
from dpde_cli.geometry import NYU_KINECT

NYU_INTRINSICS = NYU_KINECT[:4]  # fx, fy, cx, cy at NYU_SIZE
"""NYUv2 Kinect colour intrinsics (fx, fy, cx, cy) in pixels at 640 x 480."""
NYU_SIZE = (480, 640)
"""(height, width) that :data:`NYU_INTRINSICS` belong to."""

# --------------------------------------------------------------------------------------
# Configuration and sampled scene
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneConfig:
    """What to render and how scenes are drawn. Ranges are (low, high), uniform.

    Attributes:
        height: image height in pixels.
        width: image width in pixels.
        intrinsics: (fx, fy, cx, cy) in pixels at (height, width); None for NYUv2's
            Kinect intrinsics scaled to the size.
        random_focal: draw the focal length per scene (log-uniform in
            ``focal_scale_range`` times the base fx) and jitter the principal point.
        focal_scale_range: range of the focal length factor when ``random_focal``.
        room_width_range: room size along world x, metres.
        room_depth_range: room size along world y, metres.
        ceiling_height_range: metres.
        camera_height_range: camera centre above the floor, metres.
        pitch_deg_range: downward pitch of the optical axis, degrees.
        roll_deg_range: roll about the optical axis, degrees.
        furniture: place furniture, clutter and rugs.
        decorations: doors, windows, pictures, baseboards on the walls.
        shadows: trace shadow rays (soft shadows).
        shadow_samples: shadow rays per pixel and light.
        ambient_occlusion: SDF ambient occlusion.
        sensor_effects: noise, blur, JPEG, vignetting, colour cast, exposure jitter and
            borders; False gives a clean, deterministic-exposure image.
        border_prob: probability of a NYUv2-like white (or black) frame border; its
            pixels are marked invalid.
        jpeg_prob: probability of a JPEG round trip.
    """

    height: int = 240
    width: int = 320
    intrinsics: tuple[float, float, float, float] | None = None
    random_focal: bool = False
    focal_scale_range: tuple[float, float] = (0.75, 1.35)
    room_width_range: tuple[float, float] = (2.5, 8.0)
    room_depth_range: tuple[float, float] = (2.5, 8.0)
    ceiling_height_range: tuple[float, float] = (2.4, 3.2)
    camera_height_range: tuple[float, float] = (1.0, 1.7)
    pitch_deg_range: tuple[float, float] = (0.0, 20.0)
    roll_deg_range: tuple[float, float] = (-3.0, 3.0)
    furniture: bool = True
    decorations: bool = True
    shadows: bool = True
    shadow_samples: int = 2
    ambient_occlusion: bool = True
    sensor_effects: bool = True
    border_prob: float = 0.2
    jpeg_prob: float = 0.7


@dataclass(frozen=True)
class SensorParams:
    """Camera effects of one scene (drawn with the scene)."""

    exposure: float = 0.42  # target median brightness after gamma, in [0, 1]
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    gamma: float = 2.2
    contrast: float = 0.0  # blend towards an S-shaped tone curve, 0-1
    vignette: float = 0.0  # relative darkening at the image corners
    blur_sigma: float = 0.0  # pixels
    sharpen: float = 0.0  # unsharp-mask amount applied after the blur
    noise_sigma: float = 0.0  # read noise, [0, 1] units
    shot_noise: float = 0.0  # sigma of the signal-dependent part at brightness 1
    jpeg_quality: int = 0  # 0: no JPEG round trip
    border: int = 0  # width in pixels of a frame border; 0: none
    border_value: float = 1.0


@dataclass
class Scene:
    """A sampled scene, before rendering (numpy, CPU). Lengths in metres, angles in radians.

    Attributes:
        seed: the seed it was drawn from.
        room: (3,) width W (x), depth D (y), ceiling height H_c (z).
        cam_pos: (3,) camera centre in the world frame.
        cam_rot: (3, 3) world-from-camera rotation; columns are the camera x (right),
            y (down) and z (forward) axes in the world frame.
        intrinsics: (4,) fx, fy, cx, cy in pixels.
        boxes: (Nb, 7) centre xyz, half extents xyz, yaw about z.
        box_casts: (Nb,) whether the box casts shadows / occludes ambient light.
        cylinders: (Nc, 5) vertical cylinders: centre x, y, radius, z bottom, z top.
        cyl_casts: (Nc,) as ``box_casts``.
        materials: (12 + Nb + Nc, _MAT_COLS) one material row per surface: the room's
            floor, ceiling and four walls (see ``_FACE_*``), the same six for the annex,
            then boxes, then cylinders.
        lights: (Nl, 11) position xyz, rgb power, lobe direction xyz, lobe exponent,
            radius.
        ambient: hemisphere ambient irradiance (same units as light power / m^2).
        annex: (11,) an adjacent space seen through an opening in a wall: present (0/1),
            its box x0, y0, x1, y1, height, then the opening's wall (0 south, 1 north,
            2 west, 3 east), start and end along that wall and top height.
        sensor: camera effects.
    """

    seed: int
    room: np.ndarray
    cam_pos: np.ndarray
    cam_rot: np.ndarray
    intrinsics: np.ndarray
    boxes: np.ndarray
    box_casts: np.ndarray
    cylinders: np.ndarray
    cyl_casts: np.ndarray
    materials: np.ndarray
    lights: np.ndarray
    ambient: float
    annex: np.ndarray = field(default_factory=lambda: np.zeros(11))
    sensor: SensorParams = field(default_factory=SensorParams)


# Room faces: index of each in Scene.materials and the surface id of the ray caster; the
# annex's faces follow in the same order (6-11).
_FACE_FLOOR, _FACE_CEIL, _FACE_SOUTH, _FACE_NORTH, _FACE_WEST, _FACE_EAST = range(6)
_WALL_FACES = (_FACE_SOUTH, _FACE_NORTH, _FACE_WEST, _FACE_EAST)  # by wall index
_N_ROOM = 12

# Material row layout.
_M_TYPE, _M_A, _M_B, _M_SCALE, _M_SCALE2 = 0, 1, 4, 7, 8
_M_OFF, _M_GLOSS, _M_EMIT, _M_P1, _M_P2 = 9, 11, 12, 13, 14
_MAT_COLS = 15

# Material types.
(
    _PAINT,
    _WOOD,
    _TILE,
    _CARPET,
    _CONCRETE,
    _FABRIC,
    _PLASTIC,
    _METAL,
    _WINDOW,
    _PICTURE,
    _LIGHT,
    _CABINET,
    _BOOKS,
    _FOLIAGE,
    _SCREEN,
) = range(15)
_N_TYPES = 15

# --------------------------------------------------------------------------------------
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
            _clutter(self, sup, x, y, yaw)


def _footprint(item: _Item, x: float, y: float, yaw: float) -> tuple[float, float, float, float]:
    """Axis-aligned floor rectangle (x0, y0, x1, y1) covering a yawed item."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    ex, ey = c * item.w / 2 + s * item.d / 2, s * item.w / 2 + c * item.d / 2
    return (x - ex, y - ey, x + ex, y + ey)


def _clutter(b: _Builder, sup: tuple, x: float, y: float, yaw: float) -> None:
    """Small objects (books, mugs, bottles, boxes, a laptop, a plant) on a support rectangle."""
    rng = b.rng
    x0, x1, y0, y1, z = sup
    c, s = math.cos(yaw), math.sin(yaw)

    def to_world(px: float, py: float) -> tuple[float, float]:
        return x + c * px - s * py, y + s * px + c * py

    n = int(rng.integers(0, 5))
    cursor = x0 + rng.uniform(0.0, 0.15)
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
) -> None:
    """A thin box on a wall (door, window, picture, baseboard) protruding ``depth``."""
    x, y, yaw = _wall_point(b.room, wall, (s0 + s1) / 2, depth / 2)
    b.box((x, y, (z0 + z1) / 2), ((s1 - s0) / 2, depth / 2, (z1 - z0) / 2), yaw, mat, False)


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
        if any(
            s0 < e1 and e0 < s0 + w and z0 < t1 and t0 < z1 for e0, e1, t0, t1 in b.wall_spans[wall]
        ):
            continue
        if not whiteboard and rng.random() < 0.25:  # a wall shelf with books instead
            board = _wood(rng) if rng.random() < 0.6 else _plastic(rng, (0.92,) * 3, 0.1)
            depth = rng.uniform(0.18, 0.28)
            _wall_box(b, wall, s0, s0 + w, zc - 0.02, zc, depth, board)
            b.boxes[-1], b.box_casts[-1] = b.boxes[-1], True
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
        if any(
            s0 < e1 and e0 < s0 + w and z < t1 and t0 < z + h
            for e0, e1, t0, t1 in b.wall_spans[wall]
        ):
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


def _place_furniture(b: _Builder, kind: str, style: dict) -> None:
    """Wall-aligned and free-standing furniture for a room type, without overlaps."""
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
                wall = int(rng.integers(4)) if name != "counter" else wall
                length = _wall_frame(room, wall)[3]
                if length < item.w + 0.1:
                    continue
                s = rng.uniform(item.w / 2 + 0.02, length - item.w / 2 - 0.02)
                if any(
                    s - item.w / 2 < e1 and e0 < s + item.w / 2 and t0 < item.h
                    for e0, e1, t0, _ in b.wall_spans[wall]
                ):
                    continue
                x, y, yaw = _wall_point(room, wall, s, item.d / 2 + rng.uniform(0.0, 0.04))
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
            if (name in ("table", "low_table") and not against_wall) or name == "desk":
                _chairs_around(
                    b, item, x, y, yaw, style, office=kind == "office", desk=name == "desk"
                )
            break
    if rng.random() < 0.35:  # a rug
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
    if cfg.furniture:
        style = {"wood": _wood(rng)}
        _place_furniture(b, kind, style)
        _floor_clutter(b)
    if cfg.decorations:
        _pictures(b, kind)
        _wall_fittings(b)
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


# --------------------------------------------------------------------------------------
# Surface geometry at the hits
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
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
# Camera model
# --------------------------------------------------------------------------------------


def _blur(img: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (C, H, W) with reflected borders (explicit shifts, so the
    result does not depend on a convolution backend)."""
    if sigma < 0.2:
        return img
    radius = max(1, math.ceil(2.5 * sigma))
    k = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    k = [v / sum(k) for v in k]
    for dim in (1, 2):
        pad = [0, 0, 0, 0]
        pad[(2 - dim) * 2 : (2 - dim) * 2 + 2] = [radius, radius]
        x = torch.nn.functional.pad(img[None], pad, mode="reflect")[0]
        n = img.shape[dim]
        img = sum(wk * x.narrow(dim, i, n) for i, wk in enumerate(k))
    return img


def _jpeg(img: Tensor, quality: int) -> Tensor:
    """JPEG round trip (pillow) of (3, H, W) in [0, 1]; returns uint8-quantised floats."""
    from PIL import Image

    arr = (img.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(out).permute(2, 0, 1).to(img.device)


def _develop(rad: Tensor, s: SensorParams, seed: int) -> Tensor:
    """Linear radiance (3, H, W) -> image in [0, 1]: exposure, white balance, saturation,
    vignetting, gamma, tone curve, blur, sharpening, noise, JPEG, border."""
    _, h, w = rad.shape
    lum = 0.2126 * rad[0] + 0.7152 * rad[1] + 0.0722 * rad[2]
    key = torch.quantile(lum.reshape(-1)[:: max(1, lum.numel() // 20000)], 0.5).clamp(min=1e-6)
    img = rad * (s.exposure**s.gamma / key)
    img = img * torch.tensor(s.wb_gains, device=img.device)[:, None, None]
    grey = img.mean(0, keepdim=True)
    img = grey + (img - grey) * s.saturation
    if s.vignette > 0:
        yy = torch.linspace(-1, 1, h, device=img.device)[:, None]
        xx = torch.linspace(-1, 1, w, device=img.device)[None, :]
        img = img * (1 - s.vignette * ((xx * xx + yy * yy) / 2) ** 1.5)
    img = img.clamp(0.0, 1.0) ** (1.0 / s.gamma)
    img = img + s.contrast * (img * img * (3.0 - 2.0 * img) - img)
    img = _blur(img, s.blur_sigma)
    if s.sharpen > 0:
        img = img + s.sharpen * (img - _blur(img, 1.0))
    if s.noise_sigma > 0 or s.shot_noise > 0:
        gen = torch.Generator().manual_seed(int(seed) * 2654435761 % (1 << 63) + 17)
        noise = torch.randn(3, h, w, generator=gen).to(img.device)
        luma = torch.randn(1, h, w, generator=gen).to(img.device)
        sigma = s.noise_sigma + s.shot_noise * torch.sqrt(img.clamp(min=0))
        img = img + sigma * (0.6 * noise + 0.8 * luma)
    img = img.clamp(0.0, 1.0)
    if s.jpeg_quality > 0:
        img = _jpeg(img, s.jpeg_quality)
    if s.border > 0:
        img = torch.where(_border_mask(h, w, s.border, img.device), img, s.border_value)
    return img


def _border_mask(h: int, w: int, border: int, device: torch.device) -> Tensor:
    """(1, H, W) bool, False on a frame of ``border`` pixels."""
    valid = torch.ones(1, h, w, dtype=torch.bool, device=device)
    if border > 0:
        valid[:, :border] = False
        valid[:, h - border :] = False
        valid[:, :, :border] = False
        valid[:, :, w - border :] = False
    return valid


# --------------------------------------------------------------------------------------
# Public rendering API
# --------------------------------------------------------------------------------------


def render_scenes(
    scenes: list[Scene], config: SceneConfig | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Ray cast and shade sampled scenes as one batch.

    Args:
        scenes: scenes from :func:`sample_scene` (all drawn with ``config``).
        config: image size and rendering switches; defaults to :class:`SceneConfig`.
        device: torch device to render on.

    Returns:
        A dict with ``image`` (B, 3, H, W) float32 in [0, 1], ``depth`` (B, 1, H, W)
        float32 metres (camera z; 0 where not valid), ``valid`` (B, 1, H, W) bool,
        ``intrinsics`` (B, 4) float32 [fx, fy, cx, cy] in pixels, ``name`` list of str.
    """
    cfg = config or SceneConfig()
    dev = torch.device(device)
    tiles = _make_tiles(cfg.height, cfg.width, dev)
    p = _pack(scenes, dev)
    d = _camera_rays(p, tiles)
    o = p.cam_pos[:, None, :]
    t, sid = _trace(o, d, p, tiles)
    pt = o + t[..., None] * d
    surf = _surface(pt, sid, p)
    ray_len = d.norm(dim=-1, keepdim=True)
    view = -d / ray_len
    facing = (surf.normal * view).sum(-1, keepdim=True) < 0
    surf.normal = torch.where(facing, -surf.normal, surf.normal)
    n = surf.normal
    cos_v = (n * view).sum(-1).clamp(min=0.2)
    footprint = t * ray_len[..., 0] / p.intrinsics[:, None, 0:2].mean(-1) / cos_v
    mat = _gather(p.materials, sid)
    albedo, emit = _materials(mat, surf, footprint)
    gloss = mat[..., _M_GLOSS : _M_GLOSS + 1]
    direct = _direct_light(pt, n, view, gloss, t, p, tiles, cfg)
    ambient = p.ambient[:, None, None] * (0.8 + 0.2 * n[..., 2:3])
    if cfg.ambient_occlusion:
        ambient = ambient * _ambient_occlusion(pt, n, p, tiles)
    rad = tiles.to_image(albedo * (ambient + direct) + emit)
    depth = tiles.to_image(t[..., None])
    images, valids = [], []
    for i, s in enumerate(scenes):
        images.append(_develop(rad[i], s.sensor, s.seed))
        valids.append(_border_mask(cfg.height, cfg.width, s.sensor.border, dev))
    valid = torch.stack(valids) & torch.isfinite(depth) & (depth > 0)
    return {
        "image": torch.stack(images).float(),
        "depth": torch.where(valid, depth, 0.0).float(),
        "valid": valid,
        "intrinsics": p.intrinsics.float(),
        "name": [f"synthetic-{s.seed:08d}" for s in scenes],
    }


def render_batch(
    seeds: list[int] | range, config: SceneConfig | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Render several scenes in one batch (faster on a GPU).

    Args:
        seeds: scene seeds.
        config: see :class:`SceneConfig`.
        device: torch device.

    Returns:
        The batched dict of :func:`render_scenes`; item i matches ``render_scene(seeds[i])``
        up to floating-point rounding.

    Example:
        >>> render_batch([1, 2], SceneConfig(height=60, width=80))["depth"].shape
        torch.Size([2, 1, 60, 80])
    """
    cfg = config or SceneConfig()
    return render_scenes([sample_scene(s, cfg) for s in seeds], cfg, device)


def render_scene(
    seed: int, config: SceneConfig | None = None, device: str | torch.device = "cpu"
) -> dict:
    """Render one scene: the sample format of every dpde dataset.

    Args:
        seed: scene seed; the same seed gives the same scene.
        config: see :class:`SceneConfig`.
        device: torch device to render on (the tensors returned live there).

    Returns:
        ``image`` (3, H, W) float32 in [0, 1], ``depth`` (1, H, W) float32 metres (camera
        z), ``valid`` (1, H, W) bool, ``intrinsics`` (4,) float32 [fx, fy, cx, cy] pixels,
        ``name`` str.

    Example:
        >>> render_scene(0, SceneConfig(height=48, width=64))["depth"].min() > 0
        tensor(True)
    """
    out = render_batch([seed], config, device)
    return {k: v[0] for k, v in out.items()}


class SyntheticScenes(Dataset):
    """A map-style dataset of procedural scenes; item i is ``render_scene(seed + i)``.

    Args:
        length: number of scenes.
        config: see :class:`SceneConfig`.
        seed: seed of item 0.
        device: where to render (keep "cpu" inside DataLoader workers).

    Example:
        >>> ds = SyntheticScenes(10, SceneConfig(height=48, width=64))
        >>> sorted(ds[3])
        ['depth', 'image', 'intrinsics', 'name', 'valid']
    """

    def __init__(
        self,
        length: int,
        config: SceneConfig | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.length = int(length)
        self.config = config or SceneConfig()
        self.seed = int(seed)
        self.device = device

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        return render_scene(self.seed + index, self.config, self.device)


def write_sample(sample: dict, path_rgb: str | Path, path_depth: str | Path) -> None:
    """Write a rendered sample as an 8-bit RGB PNG and a 16-bit depth PNG (mm, 0 = invalid).

    Both files are written atomically (see dpde_cli.io).
    """
    from PIL import Image

    from dpde_cli.io import atomic_path, write_depth

    rgb = (sample["image"].permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).clip(0, 255)
    depth = sample["depth"][0].detach().float().cpu().numpy().copy()
    depth[~sample["valid"][0].cpu().numpy()] = 0.0
    with atomic_path(path_rgb) as tmp:
        Image.fromarray(rgb.astype(np.uint8)).save(tmp, format="PNG")
    write_depth(path_depth, depth, "png16")


def render_example(
    path_rgb: str | Path,
    path_depth_png16_mm: str | Path,
    seed: int = 0,
    config: SceneConfig | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Render one scene and write it as an 8-bit RGB PNG and a 16-bit depth PNG (mm).

    Args:
        path_rgb: output colour image (.png).
        path_depth_png16_mm: output depth, uint16 millimetres, 0 = invalid.
        seed: scene seed.
        config: defaults to 480 x 640 with no frame border.
        device: torch device.

    Returns:
        The rendered sample (see :func:`render_scene`).

    Example:
        >>> _ = render_example("/tmp/rgb.png", "/tmp/depth.png", seed=3)
    """
    cfg = config or SceneConfig(height=480, width=640, border_prob=0.0)
    sample = render_scene(seed, cfg, device)
    write_sample(sample, path_rgb, path_depth_png16_mm)
    return sample


def export_folder(
    root: str | Path,
    count: int,
    config: SceneConfig | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Path:
    """Render scenes seed .. seed+count-1 into the `folder` dataset layout.

    Writes ``root/rgb/<name>.png``, ``root/depth/<name>.png`` (uint16 mm) and
    ``root/intrinsics.json`` ({name: [fx, fy, cx, cy]}), so that a rendered set trains and
    evaluates like any RGB-D capture (``--dataset folder``). Scenes already on disk are
    kept, so an interrupted export resumes where it stopped.

    Returns:
        ``root``.
    """
    import json

    from dpde_cli.io import write_text

    root = Path(root)
    cfg = config or SceneConfig()
    intrinsics_path = root / "intrinsics.json"
    intrinsics = json.loads(intrinsics_path.read_text()) if intrinsics_path.is_file() else {}
    for index in range(seed, seed + count):
        name = f"synthetic-{index:08d}"
        rgb_path, depth_path = root / "rgb" / f"{name}.png", root / "depth" / f"{name}.png"
        if not (rgb_path.is_file() and depth_path.is_file() and name in intrinsics):
            sample = render_scene(index, cfg, device)
            write_sample(sample, rgb_path, depth_path)
            intrinsics[name] = [round(float(v), 4) for v in sample["intrinsics"]]
            if len(intrinsics) % 50 == 0:  # an interrupted export keeps most entries
                write_text(intrinsics_path, json.dumps(intrinsics))
    write_text(intrinsics_path, json.dumps(intrinsics))
    return root
