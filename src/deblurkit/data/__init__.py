"""deblurkit.data: Dataset classes, one per layout.

* :class:`PairedImageDataset` - blurry/sharp pairs in the GoPro layout
  ``<root>/<split>/<scene>/{blur,sharp}/*.png``.
* :class:`SyntheticBlurDataset` - sharp photos blurred on the fly (camera-shake trajectories,
  Levin kernels), deterministic per (seed, epoch, index).

Items are dicts ``{"lq": (3,h,w), "gt": (3,h,w), "name": str}``, float32 in [0, 1].
Training configs pick a class from :data:`DATASETS`; ``deblurkit evaluate --layout`` opens
evaluation data through :data:`LAYOUTS` (see :mod:`.registry`).
"""
from .paired import PairedImageDataset, find_pairs, item_generator
from .registry import DATASETS, LAYOUTS, open_layout, register_dataset, register_layout
from .synthetic import SyntheticBlurDataset

register_dataset("paired", PairedImageDataset)
register_dataset("synthetic", SyntheticBlurDataset)
register_layout("gopro", lambda root, split: PairedImageDataset(root, split=split, with_kernel=True))

__all__ = ["PairedImageDataset", "SyntheticBlurDataset", "find_pairs", "item_generator",
           "DATASETS", "LAYOUTS", "open_layout", "register_dataset", "register_layout"]

# System modules in this package (hide.py, realblur.py, grr.py, ...) register their datasets and
# layouts on import: adding a file is enough.
import importlib as _importlib
import pkgutil as _pkgutil

for _m in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_m.name}")
