"""Sampling a scene on the CPU from a numpy Generator: the order of the draws.

The concepts live in their own modules: ``_materials`` (surface materials), ``_builder``
(items, the builder, placement), ``_furniture`` (furniture templates), ``_furnish`` (room
types and placing their furniture), ``_tabletop`` (small things on supports), ``_room``
(floor, ceiling, walls and what is on them, lights), ``_clutter`` and ``_camera``.

The order of the draws from the scene's generator defines every seed's scene (and so the
training data of the shipped weights): add a draw only behind a ``SceneConfig`` switch
that is off by default, or from a generator of its own, as workstations and clutter do.
"""

from __future__ import annotations

import numpy as np

from dpde_cli.data.synthetic._builder import Builder, Rect
from dpde_cli.data.synthetic._camera import (
    _close_view,
    _sample_camera,
    _sample_intrinsics,
    _sample_sensor,
)
from dpde_cli.data.synthetic._clutter import _floor_clutter, _more_clutter, _workstations
from dpde_cli.data.synthetic._furnish import _ROOM_TYPES, _place_furniture
from dpde_cli.data.synthetic._furniture import Style
from dpde_cli.data.synthetic._materials import _pick, _wood
from dpde_cli.data.synthetic._room import (
    _ceiling_lights,
    _decorate_walls,
    _joists,
    _pictures,
    _room_surfaces,
    _wall_fittings,
)
from dpde_cli.data.synthetic._scene import _M_TYPE, _PAINT, Scene, SceneConfig


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
    probs = np.array([_ROOM_TYPES[k].p for k in kinds])
    kind = str(rng.choice(kinds, p=probs / probs.sum()))
    surfaces = _room_surfaces(rng, kind)
    annex_surfaces = _room_surfaces(rng, _pick(rng, list(_ROOM_TYPES)))
    if rng.random() < 0.5:
        annex_surfaces[0] = surfaces[0]
    cam_pos, cam_rot = _sample_camera(rng, room, cfg)
    b = Builder(rng, room)
    b.occupied.append(
        Rect(cam_pos[0] - 0.45, cam_pos[1] - 0.45, cam_pos[0] + 0.45, cam_pos[1] + 0.45)
    )
    if cfg.decorations:
        _decorate_walls(b, kind, surfaces[2:6])
    beams = cfg.furniture and kind == "basement" and surfaces[1][_M_TYPE] == _PAINT
    if beams and rng.random() < 0.6:
        _joists(b)
    else:
        beams = False
    _ceiling_lights(b, drop=0.25 if beams else 0.0)
    if cfg.furniture and cfg.workstations > 0:  # first: the room's furniture fits around them
        _workstations(b, np.random.default_rng([int(seed), 0x0FF1CE]), cfg.workstations, cam_pos)
    if cfg.furniture:
        style = Style(_wood(rng))
        on_walls = _place_furniture(b, kind, style)
        if on_walls and cfg.close_view_prob > 0 and rng.random() < cfg.close_view_prob:
            view = _close_view(b, on_walls, float(cam_pos[2]), cfg)
            if view is not None:
                cam_pos, cam_rot = view
        _floor_clutter(b)
    if cfg.decorations:
        _pictures(b, kind)
        _wall_fittings(b)
    if cfg.furniture and cfg.clutter > 0:
        _more_clutter(b, np.random.default_rng([int(seed), 0xC1477E5]), cfg.clutter, kind)
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
