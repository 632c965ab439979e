"""A photo's camera: where its intrinsics come from, resolved the same way for every command.

``predict`` gives each photo's focal length to a model whose depth follows the camera (a
weights file with a ``canonical_focal``); ``pointcloud`` back-projects with the whole
camera. Both resolve it here (``Camera.resolve``, over ``geometry.resolve_intrinsics``), so
the same options and the same photo give the same camera.

Example:
    >>> camera = Camera(fov=70.0)
    >>> intrinsics, source = camera.resolve(640, 480, "photo.jpg")  # source "fov" or "exif-35mm"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpde_cli.errors import DpdeError, InputError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from dpde_cli.geometry import Intrinsics


@dataclass(frozen=True)
class Camera:
    """Where a photo's intrinsics come from, the first found (``resolve_intrinsics``):
    ``fx``/``fy`` (pixels of the photo, with ``cx``/``cy``), an intrinsics ``file``, the
    photo's EXIF (unless ``exif`` is False), ``fov`` (degrees across), else a guess."""

    fx: float | None = None
    fy: float | None = None
    cx: float | None = None
    cy: float | None = None
    file: Path | None = None
    fov: float | None = None
    exif: bool = True

    def check(self) -> None:
        """Refuse, before any work, values that make no camera and an unreadable file.

        Raises:
            UsageError: naming the value or the file.
        """
        from dpde_cli.geometry import read_intrinsics_file

        try:
            if self.file is not None:
                read_intrinsics_file(self.file)
            self.resolve(640, 480, photo=None, file=False)
        except (InputError, ValueError) as exc:
            raise UsageError(str(exc)) from None

    def resolve(
        self, width: int, height: int, photo: str | Path | None, file: bool = True
    ) -> tuple[Intrinsics, str]:
        """(intrinsics, source) for a (width, height) photo (``resolve_intrinsics``)."""
        from dpde_cli.geometry import resolve_intrinsics

        return resolve_intrinsics(
            width,
            height,
            **{k: getattr(self, k) for k in ("fx", "fy", "cx", "cy", "fov")},
            file=self.file if file else None,
            image=photo if self.exif else None,
        )

    def for_photos(
        self, photos: Sequence[Path], images: Sequence[np.ndarray]
    ) -> list[tuple[Intrinsics, str] | DpdeError]:
        """Each photo's (intrinsics, source) at its decoded (EXIF-turned) size, or the
        InputError that names why it has none (an intrinsics file of another aspect
        ratio), so that one photo fails alone."""
        found: list[tuple[Intrinsics, str] | DpdeError] = []
        for photo, image in zip(photos, images, strict=True):
            height, width = image.shape[:2]
            try:
                found.append(self.resolve(width, height, photo))
            except (DpdeError, ValueError) as exc:
                found.append(exc if isinstance(exc, DpdeError) else InputError(photo, str(exc)))
        return found


def uses_camera(spec: Any) -> bool:
    """Whether a model's depth depends on the photo's focal length (``spec``: a
    predictor's ``InferenceSpec``, or a ``WeightsSpec``): weights with a
    ``canonical_focal`` predict what a camera of that focal length would see, and
    ``Predictor.predict(focals=...)`` turns it into metres for the photo's camera. Other
    weights give metres whatever the camera, and ignore it."""
    return getattr(spec, "canonical_focal", None) is not None
