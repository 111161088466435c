"""Event-camera recordings (``.aedat4``) in the web app: a thin bridge to ``deblurkit.io.events``.

The app does not read events itself. It looks up :data:`EVENT_FUNCTION` in
:data:`EVENT_MODULE` when a recording is uploaded; while that function does not exist (event
support not installed) the page shows :func:`event_support`'s reason instead.

Contract of the function the app calls::

    deblur_recording(path, *, model="evdeblur", weights=None, device="cpu",
                     progress=None) -> Iterable[Tensor]

``path`` is the stored ``.aedat4`` file; ``weights`` a checkpoint path or ``None`` (the
function's own default or an error naming what is missing); ``progress`` a callable
``progress(done, total)``; it yields the deblurred frames, each ``(C, H, W)`` float in [0, 1]
with ``C`` in {1, 3}. Bad recordings raise ``ValueError`` (or a subclass) naming the problem.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["EVENT_MODULE", "EVENT_FUNCTION", "AEDAT4_SIGNATURE", "event_support"]

EVENT_MODULE = "deblurkit.io.events"
EVENT_FUNCTION = "deblur_recording"
#: First bytes of every AEDAT 4.0 file (iniVation's format header).
AEDAT4_SIGNATURE = b"#!AER-DAT4.0"


def event_support() -> tuple[Callable[..., Any] | None, str]:
    """``(function, "")`` when event deblurring is available, else ``(None, reason)``."""
    try:
        module = importlib.import_module(EVENT_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and EVENT_MODULE.startswith(exc.name):
            return None, f"event support not installed: this deblurkit has no {EVENT_MODULE} module"
        return None, f"event support not installed: importing {EVENT_MODULE} failed ({exc})"
    except ImportError as exc:
        return None, f"event support not installed: importing {EVENT_MODULE} failed ({exc})"
    fn = getattr(module, EVENT_FUNCTION, None)
    if not callable(fn):
        return None, f"event support not installed: {EVENT_MODULE} has no {EVENT_FUNCTION}()"
    return fn, ""
