"""deblurkit.models.layers."""
