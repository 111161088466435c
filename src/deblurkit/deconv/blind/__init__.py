"""Blind kernel estimation (uniform blur), pure torch, CPU and CUDA.

- :func:`estimate_kernel` -> :class:`KernelEstimate`: the public entry point (:mod:`.api`).
- :mod:`.coarse_to_fine`: the multi-scale alternation of Pan et al. (CVPR 2016, dark channel)
  and its L0-gradient-only variant.
- :mod:`.latent`: L0 dark-channel / L0 gradient latent-image steps (HQS with FFTs).
- :mod:`.kernel_solve`: gradient selection, masked conjugate-gradient kernel solve, clean-up.
- :mod:`.pyramid`: scale schedule, image downsampling, kernel upsampling by the image scale.
- :mod:`.boundary`: smooth circular padding (Liu & Jia 2008).

See ``docs/blind_estimation.md`` for the method, parameters, sources and measured accuracy.
"""
from .api import METHODS, KernelEstimate, estimate_kernel

__all__ = ["estimate_kernel", "KernelEstimate", "METHODS"]
