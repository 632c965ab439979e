"""The camera of a scene: where it stands and looks (across the room, or close up at a
piece of furniture), its intrinsics, and its sensor effects."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dpde_cli.data._common import scale_intrinsics
from dpde_cli.data.synthetic._builder import Builder, Placed, Rect
from dpde_cli.data.synthetic._scene import NYU_INTRINSICS, NYU_SIZE, SceneConfig, SensorParams


class CameraPose(NamedTuple):
    """Camera centre (3,) in the world and world-from-camera rotation (3, 3) (columns: the
    camera's right, down and forward axes)."""

    position: np.ndarray
    rotation: np.ndarray


def _sample_camera(rng: np.random.Generator, room: np.ndarray, cfg: SceneConfig) -> CameraPose:
    """A camera pitched down with a small roll, looking across the room at a random
    target."""
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
    return CameraPose(np.array([x, y, min(height, hc - 0.3)]), _camera_rotation(yaw, pitch, roll))


def _close_view(
    b: Builder, targets: list[Placed], height: float, cfg: SceneConfig
) -> CameraPose | None:
    """A camera 0.7-2.2 m in front of a piece of furniture against a wall, aimed at it and
    pitched down at a point on it: the desk, shelf and cabinet close-ups that hand-held
    captures are full of and across-the-room views lack; the camera keeps its ``height``
    (already below the ceiling). None when no free spot is found."""
    rng = b.rng
    W, D, _ = b.room
    for t in rng.permutation(len(targets)):
        item, x, y, yaw = targets[t]
        normal = np.array([-math.sin(yaw), math.cos(yaw)])
        along = np.array([math.cos(yaw), math.sin(yaw)])
        for _ in range(8):
            dist = item.d / 2 + rng.uniform(0.7, 2.2)
            side = rng.uniform(-0.5, 0.5) * (item.w + dist)
            cx, cy = np.array([x, y]) + normal * dist + along * side
            rect = Rect(cx - 0.3, cy - 0.3, cx + 0.3, cy + 0.3)
            if not (0.4 < cx < W - 0.4 and 0.4 < cy < D - 0.4) or not b.free(rect, margin=0.0):
                continue
            aim_z = rng.uniform(0.3, 0.9) * min(item.h, height)
            heading = math.atan2(y - cy, x - cx) + rng.normal(0.0, 0.12)
            pitch = math.atan2(height - aim_z, math.hypot(x - cx, y - cy)) + rng.normal(0.0, 0.05)
            pitch = min(max(pitch, 0.0), math.radians(40.0))
            roll = math.radians(rng.uniform(*cfg.roll_deg_range))
            b.occupied.append(rect)
            return CameraPose(np.array([cx, cy, height]), _camera_rotation(heading, pitch, roll))
    return None


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
