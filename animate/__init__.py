"""animate: prompt scripts to short AnimateDiff clips."""
__version__ = "0.1.0"
