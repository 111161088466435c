"""deblurkit.data: Dataset classes, one per layout.

* :class:`PairedImageDataset` - blurry/sharp pairs in the GoPro layout
  ``<root>/<split>/<scene>/{blur,sharp}/*.png``.
* :class:`SyntheticBlurDataset` - sharp photos blurred on the fly (camera-shake trajectories,
  Levin kernels), deterministic per (seed, epoch, index).

Items are dicts ``{"lq": (3,h,w), "gt": (3,h,w), "name": str}``, float32 in [0, 1].
"""
from .paired import PairedImageDataset, find_pairs, item_generator
from .synthetic import SyntheticBlurDataset

__all__ = ["PairedImageDataset", "SyntheticBlurDataset", "find_pairs", "item_generator"]
