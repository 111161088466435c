"""deblurkit.inference."""
