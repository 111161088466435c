"""deblurkit: one PyTorch toolkit for image deblurring.

Subpackages (data flows one way, lower never imports higher):
``io`` -> ``synth`` / ``data`` -> ``engine`` (with ``models``, ``losses``, ``metrics``) ->
``inference`` -> ``cli``.
"""

__version__ = "0.1.0"
