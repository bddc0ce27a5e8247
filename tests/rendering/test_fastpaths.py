"""Fast paths (animate/fastpaths.py) give the same frames as the plain path."""
import numpy as np
import pytest
import torch

from animate.rendering import fastpaths
from animate.rendering.renderer import Renderer
from animate.spec import spec_from_fields


def _spec(fields, **over):
    return spec_from_fields({**fields, **over}, name="fast")[0]


@pytest.fixture(scope="module")
def plain(kit):
    return Renderer(device="cpu", embed_cache=False)


@pytest.fixture(scope="module")
def cached(renderer):
    return renderer  # the session's renderer: the cache is on by default


def _cache(renderer, spec):
    return renderer.stack_for(spec).pipe.text_encoder.__dict__["_animate_embeddings"]


def test_embedding_cache_same_frames_across_seeds_and_travel(plain, cached, tiny_fields):
    specs = [_spec(tiny_fields, seed=1), _spec(tiny_fields, seed=2, guidance=2.0),
             _spec(tiny_fields, prompt={0: "a fox", 4: "a wolf"}, seed=3),
             _spec(tiny_fields, prompt={0: "a fox", 4: "a wolf"}, seed=4)]
    for spec in specs:
        assert np.array_equal(plain.render(spec).frames, cached.render(spec).frames)
    cache = _cache(cached, specs[0])
    # seed 2 at guidance 2 encodes the negative too (a new key); the second travel clip is all hits
    assert cache.hits >= 2 and cache.misses >= 3
    assert "_animate_embeddings" not in plain.stack_for(specs[0]).pipe.text_encoder.__dict__


def test_embedding_cache_follows_text_encoder_lora(kit, tiny_fields):
    """A LoRA on the text encoder: adding it, changing its scale and fusing it each change the key, so the
    cached embeddings always equal a fresh encode."""
    from peft import LoraConfig, inject_adapter_in_model

    r = Renderer(device="cpu")
    spec = _spec(tiny_fields)
    pipe, _, _ = r.pipeline_call(spec)
    original = type(pipe).encode_prompt.__get__(pipe)
    te = pipe.text_encoder

    def both():
        with torch.inference_mode():
            got = pipe.encode_prompt(["a fox"], "cpu", 1, True, ["blurry"])
            want = original(["a fox"], "cpu", 1, True, ["blurry"])
        return [torch.equal(a, b) for a, b in zip(got, want)], want[0]

    same, before = both()
    assert all(same)
    torch.manual_seed(0)
    # the way diffusers' load_lora_into_text_encoder adds a LoRA to a text encoder
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                       init_lora_weights=False), te, adapter_name="te")
    same, with_lora = both()
    assert all(same) and not torch.equal(before, with_lora)
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in te.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.set_scale("te", 0.3)
    same, scaled = both()
    assert all(same) and not torch.equal(scaled, with_lora)
    for m in layers:
        m.merge()
    same, _ = both()
    assert all(same)
    cache = te.__dict__["_animate_embeddings"]
    assert cache.misses >= 4 and cache.hits == 0


def test_decode_chunk_from_free_memory(monkeypatch, cached, tiny_fields):
    spec = _spec(tiny_fields, frames=6)
    full = cached.render(spec)
    vae = cached.stack_for(spec).pipe.vae
    per_frame = fastpaths.decode_bytes_per_frame(vae, spec.height, spec.width)
    monkeypatch.setattr(fastpaths, "free_bytes", lambda device: int(per_frame * 2 / 0.7) + 1)
    assert fastpaths.fit_decode_chunk(16, vae, "cpu", spec.height, spec.width) == 2
    small = cached.render(spec)
    assert small.info["decode_chunk"] == 2 and full.info["decode_chunk"] == 16
    assert np.abs(small.frames.astype(int) - full.frames.astype(int)).max() <= 1


def test_decode_estimate_for_sd15_vae():
    class Config:
        block_out_channels = (128, 256, 512, 512)

    class Vae:
        config = Config()

        def parameters(self):
            yield torch.zeros(1)

    # 256 channels × 512² (the third up block after its upsampler) × 4 B × 4 live tensors
    assert fastpaths.decode_bytes_per_frame(Vae(), 512, 512) == 256 * 512 * 512 * 4 * 4
    assert fastpaths.free_bytes("cpu") > 0


def test_threads_capped_to_usable_cpus(monkeypatch):
    before = torch.get_num_threads()
    try:
        for name in fastpaths.THREAD_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(fastpaths, "usable_cpus", lambda: 1)
        torch.set_num_threads(2)
        assert fastpaths.set_cpu_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        assert fastpaths.set_cpu_threads() == 2  # the user's choice stands
        monkeypatch.setenv("ANIMATE_THREADS", "1")
        assert fastpaths.set_cpu_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert 1 <= fastpaths.usable_cpus() <= (__import__("os").cpu_count() or 1)


def test_unet_attention_is_sdpa(cached, tiny_fields):
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe = cached.stack_for(_spec(tiny_fields)).pipe
    kinds = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert kinds == {AttnProcessor2_0.__name__}, kinds
    assert kinds == {type(p).__name__ for p in pipe.vae.attn_processors.values()}


def test_compile_a_script_of_varied_clips_compiles_once(plain, tiny_fields):
    """The dynamo path on CPU with a backend that counts what it is given and runs it as captured (inductor's own
    kernels are measured in benchmarks/gpu_check.py; its CPU compile takes minutes on two cores). Frames are
    marked dynamic, so clips of other lengths reuse the graph; new weights of fused LoRAs too; a windowed clip
    and unfused (scheduled) LoRA weights run eagerly instead of unrolling a window loop or guarding on floats."""
    compiles = []

    def counting(graph, example_inputs):
        compiles.append(len(graph.graph.nodes))
        return graph.forward

    torch._dynamo.reset()
    r = Renderer(device="cpu", compile=counting)
    lora = [{"name": "lcm", "source": "tiny-lcm", "weight": 0.8, "kind": "lcm"},
            {"name": "zoom", "source": "tiny-zoom-in", "weight": 0.5, "kind": "motion"}]
    first = _spec(tiny_fields, adapters=lora)
    got = r.render(first)
    assert got.info["compiled"] == {"backend": "counting"} and len(compiles) >= 1
    assert np.abs(got.frames.astype(int) - plain.render(first).frames.astype(int)).max() <= 1
    graphs = len(compiles)
    longer = _spec(tiny_fields, seed=9, frames=12, adapters=[{**lora[0], "weight": 0.4}, {**lora[1], "weight": 1.0}])
    got = r.render(longer)
    assert np.abs(got.frames.astype(int) - plain.render(longer).frames.astype(int)).max() <= 1
    windowed = r.render(_spec(tiny_fields, frames=12, context={"length": 8, "overlap": 4}, adapters=lora))
    assert windowed.info["compiled"]["eager"] == "windowed clip"
    ramp = r.render(_spec(tiny_fields, adapters=[{**lora[0], "weight": {"start": 0.2, "end": 1.0}}]))
    assert ramp.info["compiled"]["eager"] == "unfused LoRA weights"
    r.render(_spec(tiny_fields, frames=6, seed=5, adapters=lora))
    assert len(compiles) == graphs  # five clips, three frame counts: the graphs of the first clip


def test_help_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom animate.cli import main\ntry:\n    main(['render', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('HEAVY', [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--compile" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout[-300:] + out.stderr[-300:]


def test_compile_refuses_ray_backend(tmp_path):
    from click.testing import CliRunner

    from animate.cli import main

    result = CliRunner().invoke(main, ["render", "--prompt", "x", "--preset", "tiny", "--compile", "--backend", "ray",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--compile needs --backend local" in result.output
    assert not (tmp_path / "out").exists()


def test_embedding_cache_on_sdxl_keys_both_text_encoders(plain, cached):
    """SDXL's encode_prompt (prompt_2, pooled embeddings, two text encoders) is cached too, with equal frames."""
    xl = dict(model="tiny-xl", motion_adapter="tiny-xl-motion", scheduler="lcm", steps=2, frames=4, width=32,
              height=32, prompt="a red fox in snow", negative="blurry")
    specs = [_spec(xl, seed=1, guidance=1.0), _spec(xl, seed=2, guidance=1.0), _spec(xl, seed=2, guidance=1.8)]
    for spec in specs:
        assert np.array_equal(plain.render(spec).frames, cached.render(spec).frames)
    pipe = cached.stack_for(specs[0]).pipe
    cache = _cache(cached, specs[0])
    assert cache.hits >= 1 and cache.misses >= 2  # the second seed hits; guidance 1.8 also encodes the negative
    state = fastpaths.text_encoder_state(pipe)
    assert "text_encoder_2" in state and id(pipe.text_encoder_2) in state


def test_quick_dtype_and_device_answer_as_diffusers(cached, tiny_fields):
    """The UNet's dtype and device come from its first parameter: diffusers' own answers, without its walk over
    every submodule (asked on every step)."""
    from diffusers import UNetMotionModel

    unet = cached.stack_for(spec_from_fields(tiny_fields)[0]).pipe.unet
    assert isinstance(unet, UNetMotionModel) and type(unet).__name__ == "UNetMotionModel"
    assert type(unet)._animate_quick_dtype and not fastpaths.quick_dtype_and_device(unet)  # swapped once
    assert (unet.dtype, unet.device) == (UNetMotionModel.dtype.fget(unet), UNetMotionModel.device.fget(unet))
    import copy

    half = copy.deepcopy(unet).to(torch.float16)  # a copy: fp32 → fp16 → fp32 would round the session's weights
    assert type(half) is type(unet) and half.dtype == UNetMotionModel.dtype.fget(half) == torch.float16
    hooked = torch.nn.Linear(2, 2)
    hooked._diffusers_hook = object()  # a model with diffusers hooks keeps diffusers' properties
    holder = torch.nn.Sequential(hooked)
    assert not fastpaths.quick_dtype_and_device(holder) and type(holder) is torch.nn.Sequential


def test_fusing_and_unfusing_loras_leaves_the_model_exactly_as_it_was(kit, tiny_fields):
    """Fused LoRA weights come back out exactly: PEFT's unfuse subtracts what it added, which drifts the base
    weights in the last bits each time, so a long-lived renderer would render the same clip differently."""
    renderer = Renderer(device="cpu")
    plain = _spec(tiny_fields)
    before = renderer.render(plain, keep_float=True).float_frames
    unet = renderer.stack_for(plain).pipe.unet
    weights = {name: p.detach().clone() for name, p in unet.named_parameters() if "lora" not in name}
    for weight in (0.8, 0.6, 0.3):
        spec = _spec(tiny_fields, adapters=[{"name": "lcm", "source": "tiny-lcm"},
                                             {"name": "zoom", "source": "tiny-zoom-in", "weight": weight}])
        renderer.render(spec)
        assert renderer.stack_for(spec).mixer.fused is not None  # the static weights took the fused path
    after = renderer.render(plain, keep_float=True).float_frames
    assert renderer.stack_for(plain).mixer.fused is None
    changed = [name for name, p in unet.named_parameters() if name in weights and not torch.equal(p, weights[name])]
    assert changed == []
    assert np.array_equal(before, after)


def test_a_fuse_that_fails_is_taken_back_out(kit, tiny_fields, monkeypatch):
    renderer = Renderer(device="cpu")
    plain = _spec(tiny_fields)
    before = renderer.render(plain, keep_float=True).float_frames
    pipe = renderer.stack_for(plain).pipe
    weights = {name: p.detach().clone() for name, p in pipe.unet.named_parameters() if "lora" not in name}
    fuse = pipe.fuse_lora

    def fuse_then_fail(**kwargs):
        fuse(**kwargs)  # the weights are changed when the failure comes, as when memory runs out part way
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pipe, "fuse_lora", fuse_then_fail)
    spec = _spec(tiny_fields, adapters=[{"name": "lcm", "source": "tiny-lcm"}])
    with pytest.raises(Exception):
        renderer.render(spec)
    assert renderer.stack_for(plain).mixer.fused is None
    monkeypatch.undo()
    assert all(torch.equal(p, weights[name]) for name, p in pipe.unet.named_parameters() if name in weights)
    assert np.array_equal(renderer.render(plain, keep_float=True).float_frames, before)


def test_decode_chunk_counts_the_cuda_allocators_cache(monkeypatch):
    """CUDA: free memory is the driver's free plus what PyTorch's allocator holds reserved but unused (fakes of
    torch.cuda's functions: this machine has no GPU)."""
    gib = 2 ** 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 9 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 3 * gib)
    assert fastpaths.free_bytes("cuda") == 7 * gib
    assert fastpaths.free_bytes("cuda:0") == 7 * gib

    class Config:
        block_out_channels = (128, 256, 512, 512)

    class Vae:
        config = Config()

        def parameters(self):
            yield torch.zeros(1, dtype=torch.float16)

    per_frame = fastpaths.decode_bytes_per_frame(Vae(), 512, 512)  # 0.5 GiB in fp16
    assert fastpaths.fit_decode_chunk(16, Vae(), "cuda", 512, 512) == int(7 * gib * 0.7 // per_frame) == 9


def test_frames_become_uint8_on_the_device_as_on_the_host():
    """frames_to_uint8 (on the device) gives the host path's frames bit for bit: diffusers' postprocessing to
    [0,1] floats, then to_uint8; values outside [-1, 1] and halfway levels included."""
    from diffusers.video_processor import VideoProcessor

    from animate.rendering.decode import to_uint8

    torch.manual_seed(0)
    images = torch.randn(5, 3, 16, 16) * 0.8
    images[0, 0, 0, :6] = torch.tensor([-1.5, 1.5, -1.0, 1.0, (0.5 / 255) * 2 - 1, (254.5 / 255) * 2 - 1])
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        piece = images.to(dtype)
        host = VideoProcessor(vae_scale_factor=8).postprocess_video(video=piece.float().permute(1, 0, 2, 3)[None],
                                                                     output_type="np")[0]
        frames, floats = fastpaths.frames_to_uint8(piece, keep_float=True)
        assert frames.dtype == np.uint8 and frames.shape == (5, 16, 16, 3)
        assert np.array_equal(frames, to_uint8(host)) and np.array_equal(floats, host)


def test_the_motion_adapters_weights_are_let_go(kit, tiny_fields):
    """Its weights were copied into the UNet: the pipeline keeps the adapter's config (FreeNoise reads it) but no
    tensor, so pipe.to() moves nothing of it; clips render as before (windows and travel included)."""
    import gc
    import weakref

    from diffusers import MotionAdapter

    import animate.rendering.renderer as renderer_module
    import motion.adapters as adapters_module

    created = []
    load = adapters_module.load_motion_adapter

    def spy(*a, **kw):
        adapter = load(*a, **kw)
        created.append((weakref.ref(next(adapter.parameters())), sum(p.numel() for p in adapter.parameters())))
        return adapter

    r = Renderer(device="cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(renderer_module, "load_motion_adapter", spy)  # where the renderer looks it up
        pipe = r.stack_for(_spec(tiny_fields)).pipe
    gc.collect()
    [(param, count)] = created
    assert count > 0 and param() is None  # the adapter's weights are gone; the UNet holds its own copies
    assert isinstance(pipe.motion_adapter, MotionAdapter) and list(pipe.motion_adapter.parameters()) == []
    assert pipe.motion_adapter.config.motion_max_seq_length > 0 and pipe.motion_adapter.dtype == torch.float32
    windowed = _spec(tiny_fields, frames=12, context={"length": 8, "overlap": 4}, prompt={0: "a fox", 6: "a wolf"})
    kept = Renderer(device="cpu")  # a stack that keeps its adapter's weights, as before
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(renderer_module, "strip_motion_adapter", lambda pipe: 0)
        before = kept.render(windowed).frames
    assert kept.stack_for(windowed).pipe.motion_adapter.config == pipe.motion_adapter.config
    assert list(kept.stack_for(windowed).pipe.motion_adapter.parameters())
    assert np.array_equal(r.render(windowed).frames, before)


def test_half_precision_decode_within_the_measured_tolerance(kit, tiny_fields):
    """SD1.5 decodes in the run's dtype on GPUs, as diffusers' AnimateDiffPipeline does. Against the fp32 decode
    of the same latents: fp16 within 1 level of 255, bf16 within 6 (measured on the tiny kit: 1 and 3; on an
    SD1.5-shaped random VAE: 1 and 6, means 0.06 and 0.52)."""
    from animate.rendering.device import decode_dtype

    spec = _spec(tiny_fields)
    full = Renderer(device="cpu")
    pipe, kwargs, _ = full.pipeline_call(spec)
    with torch.inference_mode():
        latents = pipe(**kwargs).frames
    want = full.decode(pipe, latents, spec)[0]
    for dtype, tolerance in (("fp16", 1), ("bf16", 6)):
        half = Renderer(device="cpu", dtype=dtype)
        stack = half.stack_for(spec)
        got, _, info = half.decode(stack.pipe, latents, spec)
        assert info["decode_dtype"] == dtype and stack.pipe.vae.dtype == half.dtype
        assert np.abs(got.astype(int) - want.astype(int)).max() <= tolerance

    class Vae:
        def __init__(self, upcast):
            self.config = type("Config", (), {"force_upcast": upcast})()

    assert decode_dtype("sd15", Vae(True), torch.float16) == torch.float16  # AnimateDiffPipeline ignores it
    assert decode_dtype("sdxl", Vae(True), torch.float16) == torch.float32  # the SDXL pipeline upcasts
    assert decode_dtype("sdxl", Vae(False), torch.bfloat16) == torch.bfloat16
