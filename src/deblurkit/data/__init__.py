"""deblurkit.data."""
