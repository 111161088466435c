"""deblurkit.models.layers: reusable building blocks shared by the networks.

- :mod:`.mimo`: MIMO-UNet blocks (``BasicConv``, ``ResBlock``, ``ResGroup``, ``AFF``, ``SCM``, ``FAM``).
"""
from .mimo import AFF, FAM, SCM, BasicConv, ResBlock, ResGroup

__all__ = ["AFF", "FAM", "SCM", "BasicConv", "ResBlock", "ResGroup"]
