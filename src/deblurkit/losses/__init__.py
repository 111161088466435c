"""deblurkit.losses."""
