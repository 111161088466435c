"""Training recipes of the systems: one module per system (``aspdc.py``, ``msdi.py``, ...), each
registering :class:`deblurkit.engine.Trainer` subclasses with
:func:`deblurkit.engine.trainer.register_recipe`. Every module here is imported on first use of
:func:`deblurkit.engine.make_trainer`, so adding a file is enough to add recipes."""
from __future__ import annotations

import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
