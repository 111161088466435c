"""deblurkit.synth."""
