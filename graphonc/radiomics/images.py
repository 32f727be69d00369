"""Reading one case's image and mask with SimpleITK, and the checks before extraction.

A problem with a case raises :class:`CaseError` with a short ``reason`` code (the errors table
groups by it) and a message that names the file and says how to fix it. Extraction records
the error and carries on with the other cases.
"""
from __future__ import annotations

import locale
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

from graphonc.radiomics_config import GeometrySpec

#: Grid differences below this (mm) are float noise: the mask simply takes the image's grid.
FLOAT_TOLERANCE_MM = 1e-3

READABLE = "NRRD, NIfTI, MHA/MHD, or a folder holding one DICOM series"


class CaseError(Exception):
    """A case that cannot be extracted; ``reason`` is one of ``missing_file``, ``unreadable``,
    ``empty_mask``, ``label_absent``, ``geometry_mismatch``, ``extraction_failed``."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


@contextmanager
def keep_locale() -> Iterator[None]:
    """Restore the process locale afterwards: GDCM (SimpleITK's DICOM I/O) switches it to "C"
    and leaves it there, after which Python opens text files as ASCII."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def read_image(path: Path, role: str) -> sitk.Image:
    """A file SimpleITK can read, or a folder with exactly one DICOM series.

    Args:
        role: "image" or "mask", for the messages.
    """
    path = Path(path)
    if not path.exists():
        raise CaseError("missing_file", f"{role} file {path} not found. Fix: correct the {role} path in the "
                        "manifest (relative paths are resolved against the manifest's folder).")
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            with keep_locale():
                series = reader.GetGDCMSeriesIDs(str(path))
            if not series:
                raise CaseError("unreadable", f"{role} folder {path} holds no DICOM series. Fix: point the manifest "
                                f"at a DICOM series folder or an image file ({READABLE}).")
            if len(series) > 1:
                raise CaseError("unreadable", f"{role} folder {path} holds {len(series)} DICOM series. Fix: give a "
                                "folder with one series (one folder per series).")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            with keep_locale():
                return reader.Execute()
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:200]
        raise CaseError("unreadable", f"{role} file {path} is not an image SimpleITK can read ({first}). "
                        f"Fix: give an image in a format SimpleITK reads ({READABLE}).") from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)


def _corners(img: sitk.Image) -> np.ndarray:
    """Physical positions (mm) of the first and last voxel centres, shape (2, dim)."""
    last = [s - 1 for s in img.GetSize()]
    return np.array([img.TransformIndexToPhysicalPoint([0] * img.GetDimension()),
                     img.TransformContinuousIndexToPhysicalPoint([float(x) for x in last])])


def geometry_mismatch_mm(image: sitk.Image, mask: sitk.Image) -> float:
    """Largest distance (mm) between corresponding first/last voxel centres of the two grids
    (0 when the grids are identical; grows with origin shift, spacing/size difference, rotation).
    """
    if image.GetDimension() != mask.GetDimension():
        return float("inf")
    return float(np.abs(_corners(image) - _corners(mask)).max())


def _describe(img: sitk.Image) -> str:
    r = lambda v: tuple(round(float(x), 3) for x in v)  # noqa: E731
    return f"size {img.GetSize()}, spacing {r(img.GetSpacing())}, origin {r(img.GetOrigin())}"


@dataclass
class PreparedCase:
    image: sitk.Image
    mask: sitk.Image  # UInt32, on the image grid
    label: int
    notes: list[str]


def prepare(image_path: Path, mask_path: Path, label: int | None, default_label: int,
            geometry: GeometrySpec) -> PreparedCase:
    """Read image and mask, put the mask on the image grid, check the region of interest.

    Args:
        label: the manifest's label, or None (the only value in the mask, else ``default_label``).
        default_label: the pyradiomics ``label`` setting.
    """
    image = read_image(image_path, "image")
    mask = read_image(mask_path, "mask")
    notes: list[str] = []
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError("unreadable", f"image {image_path} has {image.GetNumberOfComponentsPerPixel()} components "
                        "per voxel (colour/vector image). Fix: give a single-channel (grey-level) image.")
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError("unreadable", f"mask {mask_path} has {mask.GetNumberOfComponentsPerPixel()} components per "
                        "voxel. Fix: give a single-channel label map.")
    off = geometry_mismatch_mm(image, mask)
    if off <= FLOAT_TOLERANCE_MM and image.GetSize() == mask.GetSize():
        mask.CopyInformation(image)
    else:
        detail = f"image {_describe(image)}; mask {_describe(mask)}"
        if off == float("inf"):
            raise CaseError("geometry_mismatch", f"mask {mask_path} is {mask.GetDimension()}-D but the image is "
                            f"{image.GetDimension()}-D. Fix: export the mask on the image grid.")
        if geometry.on_mismatch == "reject" or off > geometry.tolerance_mm:
            why = ("geometry.on_mismatch is 'reject'" if geometry.on_mismatch == "reject"
                   else f"more than geometry.tolerance_mm = {geometry.tolerance_mm:g}")
            raise CaseError("geometry_mismatch", f"mask {mask_path} does not lie on the image grid: the grids differ "
                            f"by up to {off:.2f} mm ({why}; {detail}). Fix: export the mask on the image grid, or "
                            "allow resampling (geometry.on_mismatch: resample, a larger geometry.tolerance_mm).")
        mask = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
        notes.append(f"mask resampled onto the image grid (grids differed by {off:.2f} mm)")
    values = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise CaseError("unreadable", f"mask {mask_path} has non-integer values. Fix: give a label map "
                            "(0 = background, whole numbers for regions).")
    present = np.unique(values)
    present = [int(v) for v in present if v != 0]
    if not present:
        raise CaseError("empty_mask", f"mask {mask_path} is empty (no non-zero voxel"
                        f"{' after resampling onto the image grid' if notes else ''}). Fix: check the segmentation "
                        "was saved, or drop the case from the manifest.")
    if label is None:
        label = present[0] if len(present) == 1 else default_label
        if label not in present:
            raise CaseError("label_absent", f"mask {mask_path} holds several labels {present} and none is the default "
                            f"{default_label}. Fix: give the region's value in the manifest's label column.")
    elif label not in present:
        raise CaseError("label_absent", f"label {label} is not in mask {mask_path} (values present: {present}). "
                        "Fix: correct the label column of the manifest.")
    mask = sitk.Cast(mask, sitk.sitkUInt32)
    return PreparedCase(image=image, mask=mask, label=int(label), notes=notes)
