"""``python -m deblurkit`` = the ``deblurkit`` command."""
from .cli import app

app()
