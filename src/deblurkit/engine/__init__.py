"""deblurkit.engine."""
