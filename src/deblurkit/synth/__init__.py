"""deblurkit.synth: synthetic degradations and dataset builders.

* :mod:`~deblurkit.synth.kernels` - camera-shake trajectory kernels (Boracchi & Foi 2012),
  measured Levin et al. 2009 kernels, Gaussian and disk (defocus) kernels.
* :mod:`~deblurkit.synth.blur` - uniform blur (true convolution) with boundary modes, incl.
  ``valid`` and :func:`blur_valid_pair` for artefact-free pairs.
* :mod:`~deblurkit.synth.noise` - Poisson-Gaussian noise, 8-bit quantisation.
* :mod:`~deblurkit.synth.pairs` - :func:`build_pairs` writes a GoPro-layout paired dataset.
* Event-guided low-light deblurring (Zhou et al., IJCV 2023): :mod:`~deblurkit.synth.voxel`
  (13-bin voxel grid + normalisation), :mod:`~deblurkit.synth.motion` (arc trajectories,
  patch-wise warps, flow labels, kernels), :mod:`~deblurkit.synth.events` (v2e-style DVS
  simulator), :mod:`~deblurkit.synth.events_ideal` (ideal threshold-crossing simulator for video),
  :mod:`~deblurkit.synth.lowlight` (low-light noise with its Bayer branch),
  :mod:`~deblurkit.synth.evsample` (one sample), :mod:`~deblurkit.synth.evdataset` /
  :mod:`~deblurkit.synth.evvideo` (official layout from photos / video).
"""
from .blur import BOUNDARY_MODES, blur, blur_valid_pair
from .kernels import (
    center_kernel,
    center_pad,
    default_kernel_dir,
    disk_kernel,
    gaussian_kernel,
    kair_kernels,
    levin_kernels,
    load_kernel_bank,
    random_trajectories,
    trajectory_kernels,
    trajectory_to_kernels,
)
from .noise import gaussian_noise, poisson_gaussian_noise, quantize_8bit
from .shutter import global_shutter_blur, grr_blur, grr_exposures, integrate_rows, rolling_shutter_blur
from .pairs import build_pairs
from .voxel import events_to_voxel_grid, normalize_voxel_grid
from .events import DVSParams, DVSSimulator
from .events_ideal import IdealEventSimulator
from .evdataset import build_event_dataset
from .evvideo import build_event_dataset_from_video

__all__ = [
    "BOUNDARY_MODES",
    "blur",
    "blur_valid_pair",
    "build_pairs",
    "center_kernel",
    "center_pad",
    "default_kernel_dir",
    "disk_kernel",
    "gaussian_kernel",
    "gaussian_noise",
    "kair_kernels",
    "levin_kernels",
    "load_kernel_bank",
    "poisson_gaussian_noise",
    "quantize_8bit",
    "random_trajectories",
    "trajectory_kernels",
    "trajectory_to_kernels",
    "global_shutter_blur",
    "grr_blur",
    "grr_exposures",
    "integrate_rows",
    "rolling_shutter_blur",
    "events_to_voxel_grid",
    "normalize_voxel_grid",
    "DVSParams",
    "DVSSimulator",
    "IdealEventSimulator",
    "build_event_dataset",
    "build_event_dataset_from_video",
]
