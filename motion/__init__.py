"""Everything that shapes motion: adapters, LoRA mixing and schedules, prompt travel, pose guidance.

This layer never imports `animate`; it raises its own `MotionError` subclasses.
"""
