import numpy as np, torch, time
torch.set_num_threads(1)
import os; os.environ["HF_HUB_OFFLINE"]="1"
from animate.renderer import Renderer
from animate.spec import spec_from_fields
from animate.tiny import ensure_kit
import diffusers
from diffusers import AnimateDiffPipeline, MotionAdapter
kit = ensure_kit()
r = Renderer(device="cpu")
base = dict(model="tiny", motion_adapter="tiny", scheduler="lcm", steps=3, guidance=1.5, width=32, height=32, prompt="a red fox in snow", negative="blurry", seed=5)
def ref(fields, context=None, free_init=None):
    adapter = MotionAdapter.from_pretrained(str(kit / "motion-adapter"))
    pipe = AnimateDiffPipeline.from_pretrained(str(kit / "base"), motion_adapter=adapter)
    pipe.scheduler = diffusers.LCMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if context: pipe.enable_free_noise(**context)
    if free_init: pipe.enable_free_init(**free_init)
    return pipe(prompt=fields["prompt"], negative_prompt=fields["negative"], num_frames=fields["frames"], height=32, width=32,
        num_inference_steps=fields["steps"], guidance_scale=fields["guidance"], generator=torch.Generator("cpu").manual_seed(fields["seed"]), output_type="np").frames[0]
for ctx in [dict(length=8, overlap=2, weighting="flat", noise="random"), dict(length=8, overlap=5, weighting="delayed_reverse_sawtooth", noise="shuffle_context")]:
    f = {**base, "frames": 20, "context": ctx}
    ours = r.render(spec_from_fields(f)[0], keep_float=True).float_frames
    theirs = ref(f, dict(context_length=ctx["length"], context_stride=ctx["length"]-ctx["overlap"], weighting_scheme=ctx["weighting"], noise_type=ctx["noise"]))
    print("ctx", np.abs(ours-theirs).max())
for fi in [dict(iters=2, method="gaussian", fast=False), dict(iters=3, method="butterworth", fast=True)]:
    f = {**base, "frames": 8, "free_init": fi}
    res = r.render(spec_from_fields(f)[0], keep_float=True)
    theirs = ref(f, None, dict(num_iters=fi["iters"], method=fi["method"], use_fast_sampling=fi["fast"]))
    print("fi", np.abs(res.float_frames-theirs).max(), res.info["free_init"])
