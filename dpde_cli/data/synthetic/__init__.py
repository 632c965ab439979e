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

Modules: ``_scene`` (configuration and the sampled scene); sampling on the CPU with numpy:
``_layout`` (``sample_scene``, the order of the draws), ``_materials``, ``_builder`` (items,
parts, placement), ``_furniture`` (templates), ``_furnish`` (room types, placing furniture),
``_tabletop`` (small things on tables and shelves), ``_room`` (floor, ceiling, walls, doors,
windows, lights), ``_clutter``, ``_camera`` (pose, intrinsics, sensor); rendering in torch:
``_raycast`` (ray casting), ``_surface`` (surface geometry at the hits), ``_shading``
(textures and lighting), ``_render`` (camera model and the public API re-exported here).

Frames:
    World: metres, x east, y north, z up; the room is the box [0, W] x [0, D] x [0, H_c].
    Camera: OpenCV (x right, y down, z forward). Depth is z in the camera frame, metres.

Example:
    >>> sample = render_scene(7, SceneConfig(height=120, width=160))
    >>> sample["image"].shape, sample["depth"].shape
    (torch.Size([3, 120, 160]), torch.Size([1, 120, 160]))
"""

from dpde_cli.data.synthetic._layout import sample_scene
from dpde_cli.data.synthetic._render import (
    SyntheticScenes,
    export_folder,
    render_batch,
    render_example,
    render_scene,
    render_scenes,
    write_sample,
)
from dpde_cli.data.synthetic._scene import (
    NYU_INTRINSICS,
    NYU_SIZE,
    Scene,
    SceneConfig,
    SensorParams,
)

__all__ = [
    "NYU_INTRINSICS",
    "NYU_SIZE",
    "Scene",
    "SceneConfig",
    "SensorParams",
    "SyntheticScenes",
    "export_folder",
    "render_batch",
    "render_example",
    "render_scene",
    "render_scenes",
    "sample_scene",
    "write_sample",
]
