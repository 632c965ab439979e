"""Draw docs/room_cloud.png: the demo's point cloud seen from above and beside the camera.

    dpde pointcloud examples/room.jpg -o room.ply --intrinsics examples/room_intrinsics.json
    python docs/room_cloud.py room.ply docs/room_cloud.png

Headless (matplotlib's Agg backend). A fixed random subset of the points keeps the file
small, and the points more than ``ceiling`` metres above the camera (the ceiling) are left
out so that the room can be seen from above.
"""

from __future__ import annotations

import sys

import matplotlib
import numpy as np

from dpde_cli.pointcloud import read_point_cloud


def main(ply: str, png: str, points: int = 80000, ceiling: float = 0.8) -> None:
    """Render ``points`` of the cloud in ``ply`` to ``png``."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cloud = read_point_cloud(ply)
    below = np.flatnonzero(-cloud.points[:, 1] < ceiling)
    keep = np.random.default_rng(0).permutation(below)[:points]
    xyz, rgb = cloud.points[keep], cloud.colors[keep] / 255.0
    fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_subplot(projection="3d")
    # camera frame (x right, y down, z forward) drawn with z as depth and -y as up
    ax.scatter(xyz[:, 0], xyz[:, 2], -xyz[:, 1], c=rgb, s=0.8, linewidths=0)
    ax.view_init(elev=35, azim=-70)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z, depth (m)")
    ax.set_zlabel("up (m)")
    ax.set_box_aspect(np.ptp(xyz[:, [0, 2, 1]], axis=0), zoom=1.12)
    ax.scatter([0], [0], [0], c="red", s=30)  # the camera
    fig.subplots_adjust(left=0, right=0.94, bottom=0.04, top=1.02)
    fig.savefig(png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
