"""deblurkit.metrics."""
