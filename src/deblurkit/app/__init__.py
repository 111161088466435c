"""deblurkit's local web app (``deblurkit serve``): upload a photo, deblur it, compare, download.

FastAPI + a small static page (vanilla JavaScript, no external resources), so it works with no
network. :func:`create_app` builds the app; :class:`AppConfig` holds its settings.
"""
from .config import AppConfig
from .server import create_app

__all__ = ["AppConfig", "create_app"]
