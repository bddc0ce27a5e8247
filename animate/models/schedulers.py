"""Schedulers by name, each built from the base model's own scheduler config (as diffusers' docs do)."""
from __future__ import annotations

from typing import Any, Callable

from animate.errors import ConfigError
from pathlib import Path
from typing import TYPE_CHECKING
from animate.models.sources import Source
from animate.models.configs import find_config

if TYPE_CHECKING:
    from animate.spec import ClipSpec


def _make(cls_name: str, **overrides: Any) -> Callable[[dict], Any]:
    def build(base_config: dict):
        import diffusers  # torch stack: kept out of light commands

        return getattr(diffusers, cls_name).from_config(base_config, **overrides)

    return build


# name → (builder, one-line description). Overrides follow the AnimateDiff / LCM / Lightning model cards.
SCHEDULERS: dict[str, tuple[Callable[[dict], Any], str]] = {
    "lcm": (_make("LCMScheduler"), "LCM-LoRA (4–8 steps, guidance 1–2)"),
    "animatelcm": (_make("LCMScheduler", beta_schedule="linear"), "AnimateLCM (linear betas, 4–8 steps)"),
    "lightning": (_make("EulerDiscreteScheduler", timestep_spacing="trailing", beta_schedule="linear"),
                  "AnimateDiff-Lightning (steps = the checkpoint's, guidance 1.0)"),
    "lightning-xl": (_make("EulerDiscreteScheduler", timestep_spacing="trailing"),
                     "SDXL-Lightning (the base's betas, trailing; steps = the checkpoint's, guidance 0)"),
    "ddim": (_make("DDIMScheduler", clip_sample=False, timestep_spacing="linspace", beta_schedule="linear",
                   steps_offset=1), "DDIM as the AnimateDiff model cards use it"),
    "euler": (_make("EulerDiscreteScheduler"), "Euler"),
    "euler-a": (_make("EulerAncestralDiscreteScheduler"), "Euler ancestral"),
    "dpm++2m": (_make("DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=2),
                "DPM++ 2M"),
    "dpm++2m-karras": (_make("DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=2,
                             use_karras_sigmas=True), "DPM++ 2M Karras"),
    "default": (lambda cfg: own_scheduler_class(cfg).from_config(cfg), "the base model's own scheduler"),
}


def own_scheduler_class(base_config: dict):
    """The scheduler class a model's config names. diffusers' top-level module is lazy: a class is only in its
    `__dict__` once accessed, so it is looked up with getattr, and only scheduler classes are accepted (a config
    is data, never a way to pick arbitrary code)."""
    import diffusers  # torch stack: kept out of light commands
    from diffusers import SchedulerMixin  # torch stack: kept out of light commands

    name = base_config.get("_class_name")
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise ConfigError(f"the model's scheduler config names {name!r}, which is not a diffusers scheduler",
                          where="scheduler",
                          hint=f"choose a scheduler by name instead of default: {', '.join(SCHEDULERS)}")
    return cls


DISTILLED = {"lcm", "animatelcm", "lightning", "lightning-xl"}


def build_scheduler(name: str, base_config: dict):
    """A fresh scheduler (they are stateful) for one clip."""
    try:
        builder = SCHEDULERS[name][0]
    except KeyError:
        raise ConfigError(f"unknown scheduler {name!r}", where="scheduler",
                          hint=f"choose one of {', '.join(SCHEDULERS)}") from None
    return builder(dict(base_config))


# Config keys that cap the step count: DDIM and LCM refuse more steps than their training timesteps in
# set_timesteps (others would repeat timesteps), and LCM more than its distillation schedule's length.
STEP_LIMIT_KEYS = ("original_inference_steps", "num_train_timesteps")


def step_limits(scheduler) -> dict[str, int]:
    """The most steps `scheduler` accepts, by the config key that sets each limit (tightest first)."""
    config = scheduler.config
    limits = {key: int(config[key]) for key in STEP_LIMIT_KEYS if config.get(key) is not None}
    return dict(sorted(limits.items(), key=lambda item: item[1]))


def refusal(scheduler, steps: int) -> str | None:
    """diffusers' own first line when `scheduler` refuses `steps` (None when it takes them); no model needed."""
    try:
        scheduler.set_timesteps(steps)
    except (ValueError, ZeroDivisionError, IndexError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return (lines[0] if lines else type(exc).__name__)[:300]
    return None


SCHEDULER_CONFIG = Path("scheduler") / "scheduler_config.json"


SINGLE_FILE_SCHEDULER = "PNDMScheduler"  # what diffusers gives SD1.5 single files without a config folder


def base_scheduler_config(src: Source) -> tuple[dict, str | None]:
    """The base model's scheduler config and the file it came from, read without loading the model (the one
    config reader's order: folder, `config:`, hub cache, hub). Else ({}, None)."""
    return find_config(src, SCHEDULER_CONFIG.as_posix()) or ({}, None)


def check_steps(spec: ClipSpec, label: str) -> None:
    """The clip's step count against the limits of its scheduler, built as the render will build it."""
    config, origin = base_scheduler_config(spec.model)
    if spec.scheduler == "default" and not config:
        config = {"_class_name": SINGLE_FILE_SCHEDULER}
    try:
        scheduler = build_scheduler(spec.scheduler, config)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=label, hint=exc.hint) from None
    cls = type(scheduler).__name__
    for key, limit in step_limits(scheduler).items():
        if spec.steps > limit:
            source = f"{key} in {origin}" if origin and key in config else f"{cls}'s default {key}"
            hint = "LCM wants 4–8 steps" if cls == "LCMScheduler" else f"use at most {limit} steps"
            raise ConfigError(f"steps: {spec.steps} is more than the {spec.scheduler} scheduler allows ({limit}, "
                              f"{source})", where=label, hint=hint)
    why = refusal(scheduler, spec.steps)
    if why:
        raise ConfigError(f"steps: the {spec.scheduler} scheduler ({cls}) refuses {spec.steps} steps: {why}",
                          where=label, hint="use fewer steps or another scheduler")
