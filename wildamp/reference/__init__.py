"""Reference motion: clips, datasets, GMR ingest, resampling.

The embedded gait generator and the feasibility gate live in sibling modules
(``wildamp.reference.generator``, ``wildamp.reference.feasibility``).
"""

from wildamp.reference.clip import Clip, MotionDataset
from wildamp.reference.gmr import (
    UnsafePickleError,
    convert_gmr_files,
    gmr_to_clip,
    load_gmr_pickle,
    write_gmr_pickle,
)
from wildamp.reference.resample import resample_clip

__all__ = [
    "Clip",
    "MotionDataset",
    "UnsafePickleError",
    "convert_gmr_files",
    "gmr_to_clip",
    "load_gmr_pickle",
    "resample_clip",
    "write_gmr_pickle",
]
