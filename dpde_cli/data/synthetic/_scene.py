"""Scene description: the configuration, the sampled scene, sensor parameters, material codes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dpde_cli.errors import UsageError
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
        close_view_prob: probability of moving the camera to 0.7-2.2 m in front of a piece
            of furniture against a wall (desk, shelf, cabinet, sofa...) and aiming it down at
            it, instead of the across-the-room view; 0 keeps every seed's scene as before.
        clutter: how much more clutter than a tidy room (0 keeps every seed's scene as
            before; 1 is about a lived-in basement or office): fuller tables and shelves,
            piles of boxes, loaded storage racks, partitions, ceiling ducts and pipes, coats
            and bags on the walls. Basements and offices get twice as much.
        workstations: mean number of open-plan office workstations added to a room (0
            keeps every seed's scene as before): a desk with a cubicle panel along its back
            and often one side, a monitor, things on the desk, an office chair in front;
            half with the panel against a wall, half free-standing across the room.
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
    close_view_prob: float = 0.0
    clutter: float = 0.0
    workstations: float = 0.0
    furniture: bool = True
    decorations: bool = True
    shadows: bool = True
    shadow_samples: int = 2
    ambient_occlusion: bool = True
    sensor_effects: bool = True
    border_prob: float = 0.2
    jpeg_prob: float = 0.7

    def __post_init__(self) -> None:
        """Refuse ranges the generator cannot draw from (a room under 1.2 m across leaves
        no wall span for a door or window)."""
        for name in ("room_width_range", "room_depth_range", "ceiling_height_range"):
            low, high = getattr(self, name)
            if not MIN_ROOM_SIZE <= low <= high:
                raise UsageError(
                    f"{name} must be (low, high) metres with {MIN_ROOM_SIZE} <= low <= high, "
                    f"got ({low:g}, {high:g})"
                )


MIN_ROOM_SIZE = 1.2
"""Metres: the narrowest room (and lowest ceiling) SceneConfig accepts."""


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
