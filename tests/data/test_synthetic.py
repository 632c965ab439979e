"""Tests of the procedural scene generator (dpde_cli.data.synthetic)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dpde_cli.data.synthetic import (
    NYU_INTRINSICS,
    SceneConfig,
    SyntheticScenes,
    _raycast,
    export_folder,
    render_batch,
    render_example,
    render_scene,
    sample_scene,
)
from dpde_cli.errors import UsageError

SMALL = SceneConfig(height=50, width=70)  # not a whole number of 16-pixel tiles
CLEAN = SceneConfig(height=60, width=80, sensor_effects=False)
EMPTY = SceneConfig(
    height=60,
    width=80,
    furniture=False,
    decorations=False,
    sensor_effects=False,
    room_width_range=(8.0, 8.0),
    room_depth_range=(8.0, 8.0),
    camera_height_range=(1.3, 1.3),
    pitch_deg_range=(20.0, 20.0),
    roll_deg_range=(0.0, 0.0),
)


@pytest.fixture(scope="module")
def small_sample() -> dict:
    return render_scene(3, SMALL)


def test_sample_keys_shapes_dtypes(small_sample):
    s = small_sample
    assert sorted(s) == ["depth", "image", "intrinsics", "name", "valid"]
    assert s["image"].shape == (3, 50, 70) and s["image"].dtype == torch.float32
    assert s["depth"].shape == (1, 50, 70) and s["depth"].dtype == torch.float32
    assert s["valid"].shape == (1, 50, 70) and s["valid"].dtype == torch.bool
    assert s["intrinsics"].shape == (4,) and s["intrinsics"].dtype == torch.float32
    assert s["name"] == "synthetic-00000003"
    assert float(s["image"].min()) >= 0.0 and float(s["image"].max()) <= 1.0


def test_default_intrinsics_are_nyu_scaled(small_sample):
    fx, fy, cx, cy = NYU_INTRINSICS
    sx, sy = 70 / 640, 50 / 480
    expected = [fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5]
    assert torch.allclose(small_sample["intrinsics"], torch.tensor(expected), rtol=1e-5)


def test_same_seed_same_scene_other_seed_differs():
    a, b, c = render_scene(11, SMALL), render_scene(11, SMALL), render_scene(12, SMALL)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])
    assert not torch.equal(a["depth"], c["depth"])
    assert not torch.equal(a["image"], c["image"])


@pytest.mark.parametrize("seed", [0, 5, 9])
def test_depth_positive_and_within_the_room(seed):
    s = render_scene(seed, CLEAN)
    d = s["depth"][s["valid"]]
    assert s["valid"].all()  # no border without sensor effects
    assert float(d.min()) > 0.05
    assert float(d.max()) < 12.0
    scene = sample_scene(seed, CLEAN)
    w, dd, h = scene.room
    assert 2.5 <= w <= 8.0 and 2.5 <= dd <= 8.0 and 2.4 <= h <= 3.2
    x, y, z = scene.cam_pos
    assert 0 < x < w and 0 < y < dd and 1.0 <= z <= 1.7


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_floor_depth_matches_the_plane(seed):
    s = render_scene(seed, EMPTY)
    _, fy, _, cy = s["intrinsics"].double().tolist()
    pitch, height = math.radians(20.0), 1.3
    rows = torch.arange(45, 60, dtype=torch.float64)[:, None]
    # world "down" in the camera frame is (0, cos(pitch), sin(pitch)) without roll, so a
    # ray (x, y, 1) meets the floor at depth height / (y cos(pitch) + sin(pitch))
    expected = (height / ((rows - cy) / fy * math.cos(pitch) + math.sin(pitch))).expand(15, 30)
    got = s["depth"][0, 45:60, 25:55].double()
    assert torch.allclose(got, expected, rtol=1e-4)


def _inverse_depth_steps(depth: torch.Tensor) -> torch.Tensor:
    """|change of 1/depth| between horizontal and vertical neighbours, 1/m, flattened."""
    inv = 1.0 / depth
    return torch.cat(
        [(inv[:, 1:] - inv[:, :-1]).abs().flatten(), (inv[1:] - inv[:-1]).abs().flatten()]
    )


def test_empty_room_is_smooth_but_furniture_makes_depth_edges():
    # inverse depth is linear in pixel coordinates on a plane: steps stay below
    # 1 / (f * distance to the plane) = 1 / (65 px * 0.5 m) here, away from occlusions
    assert float(_inverse_depth_steps(render_scene(4, EMPTY)["depth"][0]).max()) < 0.04
    edges = [
        int((_inverse_depth_steps(render_scene(seed, CLEAN)["depth"][0]) > 0.08).sum())
        for seed in (0, 1, 2)
    ]
    assert min(edges) > 10  # object boundaries against the background


def test_image_statistics_are_plausible():
    for seed in (0, 1, 2, 3):
        img = render_scene(seed, SMALL)["image"]
        assert 0.12 < float(img.mean()) < 0.8
        assert float(img.std()) > 0.04
        assert float(img.mean(dim=(1, 2)).std()) < 0.2  # no extreme colour cast


def test_border_is_invalid_with_zero_depth():
    cfg = SceneConfig(height=60, width=80, border_prob=1.0)
    s = render_scene(0, cfg)
    valid, depth = s["valid"][0], s["depth"][0]
    assert not valid[0].any() and not valid[:, 0].any()
    assert not valid[-1].any() and not valid[:, -1].any()
    assert valid[30, 40] and (depth[~valid] == 0).all() and (depth[valid] > 0).all()


def test_random_focal_changes_intrinsics():
    cfg = SceneConfig(height=60, width=80, random_focal=True)
    fx = {float(render_scene(seed, cfg)["intrinsics"][0]) for seed in range(4)}
    base = NYU_INTRINSICS[0] * 80 / 640
    assert len(fx) == 4
    assert all(0.74 * base <= f <= 1.36 * base for f in fx)


def test_explicit_intrinsics_are_used():
    cfg = SceneConfig(
        height=48, width=64, intrinsics=(50.0, 50.0, 31.5, 23.5), sensor_effects=False
    )
    s = render_scene(0, cfg)
    assert s["intrinsics"].tolist() == [50.0, 50.0, 31.5, 23.5]


def test_batch_matches_single_scenes():
    batch = render_batch([7, 8], SMALL)
    assert batch["image"].shape == (2, 3, 50, 70) and batch["name"][1] == "synthetic-00000008"
    for i, seed in enumerate((7, 8)):
        single = render_scene(seed, SMALL)
        assert torch.allclose(batch["depth"][i], single["depth"], atol=1e-5)
        assert torch.equal(batch["valid"][i], single["valid"])
        assert (batch["image"][i] - single["image"]).abs().mean() < 2e-3


def test_tile_culling_matches_testing_every_primitive(monkeypatch):
    cfg = SceneConfig(height=40, width=56, sensor_effects=False, shadows=False)
    culled = render_scene(5, cfg)

    def all_pairs(p, tiles):
        b, n = p.boxes.shape[0], p.boxes.shape[1] + p.cyls.shape[1]
        grid = torch.ones(b, tiles.count, n, dtype=torch.bool)
        return torch.nonzero(grid & _raycast._present(p)[:, None, :])

    monkeypatch.setattr(_raycast, "_view_pairs", all_pairs)
    brute = render_scene(5, cfg)
    assert torch.equal(culled["depth"], brute["depth"])


def test_dataset_items_are_render_scene():
    ds = SyntheticScenes(4, SMALL, seed=20)
    assert len(ds) == 4
    item = ds[1]
    assert sorted(item) == ["depth", "image", "intrinsics", "name", "valid"]
    assert torch.equal(item["depth"], render_scene(21, SMALL)["depth"])
    assert ds[-1]["name"] == "synthetic-00000023"
    with pytest.raises(IndexError):
        ds[4]


def test_render_example_writes_png16_millimetres(tmp_path):
    from PIL import Image

    cfg = SceneConfig(height=48, width=64, border_prob=0.0)
    sample = render_example(tmp_path / "rgb.png", tmp_path / "depth.png", seed=2, config=cfg)
    rgb = np.asarray(Image.open(tmp_path / "rgb.png"))
    depth = np.asarray(Image.open(tmp_path / "depth.png"))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert depth.shape == (48, 64) and depth.dtype == np.uint16
    metres = sample["depth"][0].numpy()
    assert np.abs(depth / 1000.0 - metres).max() <= 0.0006


def test_scene_sampling_is_device_free_and_deterministic():
    a, b = sample_scene(42), sample_scene(42)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.materials, b.materials)
    assert a.lights.shape[0] >= 1
    assert np.allclose(a.cam_rot.T @ a.cam_rot, np.eye(3), atol=1e-9)


def test_renders_on_the_test_device(device):
    cfg = SceneConfig(height=48, width=64, sensor_effects=False)
    here = render_scene(6, cfg, device=device)
    assert here["depth"].device.type == torch.device(device).type
    cpu = render_scene(6, cfg)
    close = torch.isclose(here["depth"].cpu(), cpu["depth"], rtol=1e-4)
    assert float(close.float().mean()) > 0.995  # object edges may flip by a pixel
    assert (here["image"].cpu() - cpu["image"]).abs().mean() < 0.01


def _inside_a_box(point: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether a world point is inside any (yawed) box of a scene."""
    x, y, z = point
    for bx, by, bz, hx, hy, hz, yaw in boxes:
        u, v = x - bx, y - by
        lu = abs(u * math.cos(yaw) + v * math.sin(yaw))
        lv = abs(-u * math.sin(yaw) + v * math.cos(yaw))
        if lu < hx and lv < hy and abs(z - bz) < hz:
            return True
    return False


def test_close_views_look_down_at_furniture_from_nearby():
    across = SceneConfig(height=30, width=40, sensor_effects=False, shadows=False)
    close = SceneConfig(
        height=30, width=40, sensor_effects=False, shadows=False, close_view_prob=1.0
    )
    seeds = range(20, 32)
    moved = []
    for seed in seeds:
        a, c = sample_scene(seed, across), sample_scene(seed, close)
        assert np.array_equal(a.room, c.room)  # the same room, furnished the same way
        if np.allclose(a.cam_pos, c.cam_pos):
            continue
        moved.append(seed)
        w, d, _ = c.room
        x, y, z = c.cam_pos
        assert 0.4 < x < w - 0.4 and 0.4 < y < d - 0.4 and z == a.cam_pos[2]
        assert c.cam_rot[2, 2] <= 1e-9  # the optical axis points level or down
        assert not _inside_a_box(c.cam_pos, c.boxes)
    assert len(moved) >= 9  # most rooms have furniture against a wall with space before it
    near = render_batch(moved, close)["depth"].flatten(1).median(1).values
    far = render_batch(moved, across)["depth"].flatten(1).median(1).values
    assert float(near.mean()) < 0.75 * float(far.mean())


def test_clutter_adds_objects_to_the_same_room_and_nothing_else():
    tidy = SceneConfig(height=30, width=40, sensor_effects=False, shadows=False)
    busy = SceneConfig(height=30, width=40, sensor_effects=False, shadows=False, clutter=1.0)
    added = []
    for seed in range(40, 52):
        a, c = sample_scene(seed, tidy), sample_scene(seed, busy)
        # the tidy scene is kept whole (room, camera, lights, every primitive and material)
        assert np.array_equal(a.room, c.room) and np.array_equal(a.cam_pos, c.cam_pos)
        assert np.array_equal(a.lights, c.lights)
        assert np.array_equal(c.boxes[: len(a.boxes)], a.boxes)
        assert np.array_equal(c.cylinders[: len(a.cylinders)], a.cylinders)
        assert len(c.materials) == len(c.boxes) + len(c.cylinders) + 12  # room + annex surfaces
        new = c.boxes[len(a.boxes) :]
        added.append(len(new) + len(c.cylinders) - len(a.cylinders))
        w, d, hc = c.room
        # new boxes stay where the tidy scene has things (the room and any annex through a
        # doorway) and nothing goes through floor or ceiling
        lo = np.minimum(a.boxes[:, :2].min(0), 0.0)
        hi = np.maximum(a.boxes[:, :2].max(0), (w, d))
        assert np.all((new[:, :2] > lo) & (new[:, :2] < hi))
        assert np.all(new[:, 2] - new[:, 5] >= -1e-9) and np.all(new[:, 2] + new[:, 5] <= hc)
        assert not _inside_a_box(c.cam_pos, new)
    assert np.median(added) >= 10  # clearly busier, not a token object or two

    # more, nearer surfaces: the depth has more edges than the tidy room's
    def edges(cfg: SceneConfig) -> float:
        depth = render_batch(list(range(40, 46)), cfg)["depth"]
        return float((depth[..., 1:] - depth[..., :-1]).abs().gt(0.1).float().mean())

    assert edges(busy) > 1.1 * edges(tidy)


def _panels(boxes: np.ndarray) -> int:
    """Boxes shaped like cubicle panels: thin, wide, standing on the floor, above desk height."""
    thin = np.minimum(boxes[:, 3], boxes[:, 4]) < 0.04
    wide = np.maximum(boxes[:, 3], boxes[:, 4]) > 0.3
    tall = (boxes[:, 2] - boxes[:, 5] < 1e-6) & (2 * boxes[:, 5] >= 1.1)
    return int((thin & wide & tall).sum())


def test_workstations_are_desks_with_panels_inside_the_room_and_clear_of_the_camera():
    plain = SceneConfig(height=30, width=40, sensor_effects=False, shadows=False)
    office = SceneConfig(height=30, width=40, sensor_effects=False, shadows=False, workstations=2)
    added, panels = [], 0
    for seed in range(60, 72):
        a, c = sample_scene(seed, plain), sample_scene(seed, office)
        assert np.array_equal(a.room, c.room) and np.array_equal(a.cam_pos, c.cam_pos)
        added.append(len(c.boxes) - len(a.boxes))
        w, d, hc = c.room
        lo = np.minimum(a.boxes[:, :2].min(0), 0.0)  # the room, and any annex beyond a door
        hi = np.maximum(a.boxes[:, :2].max(0), (w, d))
        assert np.all((c.boxes[:, :2] >= lo) & (c.boxes[:, :2] <= hi))
        assert np.all(c.boxes[:, 2] - c.boxes[:, 5] >= -1e-9)
        assert np.all(c.boxes[:, 2] + c.boxes[:, 5] <= hc)
        assert not _inside_a_box(c.cam_pos, c.boxes)
        panels += _panels(c.boxes) - _panels(a.boxes)
    assert np.median(added) >= 5 and panels >= 12
    assert SceneConfig().workstations == 0  # off unless asked for: default scenes unchanged


def test_a_workstation_stays_inside_its_footprint():
    # placement checks only the footprint (w x d): a part beyond it could overlap a neighbour
    from dpde_cli.data.synthetic._clutter import _workstation

    rng = np.random.default_rng(5)
    for _ in range(300):
        item = _workstation(rng)
        for x, y, _z, hx, hy, _hz, yaw, _mat in item.boxes:
            c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
            assert abs(x) + hx * c + hy * s <= item.w / 2 + 1e-9
            assert abs(y) + hx * s + hy * c <= item.d / 2 + 1e-9
        for x, y, r, *_ in item.cyls:
            assert abs(x) + r <= item.w / 2 + 1e-9 and abs(y) + r <= item.d / 2 + 1e-9


def test_narrow_long_rooms_are_drawn_without_error():
    # corridors: narrower than the rug, the furniture and the camera margins assume
    corridor = SceneConfig(
        room_width_range=(1.2, 1.8), room_depth_range=(8.0, 14.0), clutter=1.0, close_view_prob=0.3
    )
    for seed in range(40):
        scene = sample_scene(seed, corridor)
        w, d, hc = scene.room
        assert 0 < scene.cam_pos[0] < w and 0 < scene.cam_pos[1] < d and 0 < scene.cam_pos[2] < hc
    with pytest.raises(UsageError, match=r"room_width_range .* 1.2 <= low <= high, got \(1, 1\)"):
        SceneConfig(room_width_range=(1.0, 1.0))  # narrower: no wall span for a door
    with pytest.raises(UsageError, match="room_depth_range"):
        SceneConfig(room_depth_range=(5.0, 3.0))


def test_export_folder_writes_a_folder_dataset_resumes_and_batches(tmp_path):
    import json

    from PIL import Image

    from dpde_cli.data import build_dataset

    cfg = SceneConfig(height=48, width=64)
    one = export_folder(tmp_path / "one", 3, cfg, seed=30)
    names = [f"synthetic-{i:08d}" for i in (30, 31, 32)]
    assert sorted(json.loads((one / "intrinsics.json").read_text())) == names
    depth = np.asarray(Image.open(one / "depth" / f"{names[1]}.png"))
    metres = render_scene(31, cfg)["depth"][0].numpy()
    assert depth.dtype == np.uint16 and np.abs(depth / 1000.0 - metres).max() <= 0.0006
    assert len(build_dataset("folder", one, "all")) == 3

    # A second call keeps what is on disk and renders only the missing scene.
    (one / "rgb" / f"{names[2]}.png").unlink()
    stamp = (one / "rgb" / f"{names[0]}.png").stat().st_mtime_ns
    export_folder(one, 3, cfg, seed=30)
    assert (one / "rgb" / f"{names[2]}.png").is_file()
    assert (one / "rgb" / f"{names[0]}.png").stat().st_mtime_ns == stamp

    batched = export_folder(tmp_path / "batched", 3, cfg, seed=30, batch_size=2)
    for name in names:
        for sub in ("rgb", "depth"):
            a = np.asarray(Image.open(one / sub / f"{name}.png")).astype(int)
            b = np.asarray(Image.open(batched / sub / f"{name}.png")).astype(int)
            assert np.abs(a - b).max() <= 1 and np.mean(a != b) < 0.01
    with pytest.raises(ValueError, match="batch_size"):
        export_folder(tmp_path / "bad", 1, cfg, batch_size=0)


# Known answers: the shipped weights' training data are defined by seeds, so a scene must
# stay the scene it was. Sums of the sampled primitives (float64 numpy on the CPU) are
# pinned tightly; the rendered depth (no JPEG in it) closely; the image, whose JPEG round
# trip depends on the libjpeg build, loosely.
_KNOWN = SceneConfig(height=60, width=80)
_CORRIDOR = dict(clutter=1.0, room_width_range=(1.6, 3.0), room_depth_range=(8.0, 14.0))
KNOWN_SCENES = {
    # name: (seed, config, (boxes, cylinders, lights), sums of boxes, cylinders, materials,
    #        lights, valid pixels, mean/min/max depth, image channel means)
    "tidy": (
        3, _KNOWN, (89, 25, 4), (824.9325764463679, 221.41682719450125, 6261.305659318455,
        68.89013096422258), 4800, (5.322036040102442, 1.2627428770065308, 7.4255452156066895),
        (0.40819, 0.41856, 0.40744),
    ),
    "corridor": (
        117000, replace(_KNOWN, **_CORRIDOR), (99, 24, 4), (919.1232704664355,
        199.33646160472827, 6917.545296819022, 83.24051316757041), 4800,
        (3.119674435183406, 1.1258310079574585, 9.200416564941406), (0.35677, 0.36552, 0.36924),
    ),
    "office": (
        9, replace(_KNOWN, workstations=2, close_view_prob=1.0), (101, 19, 2),
        (854.2097820499895, 156.5515627350488, 6052.441157310939, 26.609887739992878), 4800,
        (2.034235685231785, 0.7765270471572876, 3.747145891189575), (0.43252, 0.39278, 0.34285),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KNOWN_SCENES))
def test_known_scenes_are_drawn_and_rendered_as_before(name):
    seed, cfg, counts, sums, n_valid, depth_stats, image_means = KNOWN_SCENES[name]
    scene = sample_scene(seed, cfg)
    assert (len(scene.boxes), len(scene.cylinders), len(scene.lights)) == counts
    got = [float(a.sum()) for a in (scene.boxes, scene.cylinders, scene.materials, scene.lights)]
    assert got == pytest.approx(sums, rel=1e-9)
    sample = render_scene(seed, cfg)
    depth = sample["depth"][sample["valid"]].double()
    assert int(sample["valid"].sum()) == n_valid
    stats = (float(depth.mean()), float(depth.min()), float(depth.max()))
    assert stats == pytest.approx(depth_stats, rel=1e-5)
    means = sample["image"].double().mean((1, 2)).tolist()
    assert means == pytest.approx(image_means, abs=2e-3)
