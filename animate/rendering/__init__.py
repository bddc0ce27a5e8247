"""Turning one ClipSpec into frames: the renderer, model loading, memory ladder, numeric checks, fast paths
and the conditioning variants (keyframes, video-to-video)."""
