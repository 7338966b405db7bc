"""diffusers' ``PipelineTesterMixin`` checks (its tests/pipelines/test_pipelines_common.py), for TurboNextPipeline.

diffusers' mixin is not in its wheel; these are its checks that apply to a one-video-per-call pose-transfer
pipeline, on tiny seeded components: 64x64, 3 pose frames, 2 steps, on the CPU. ``get_dummy_components``
decodes with a tiny AutoencoderKL (a random tiny TAESD decodes to near-black frames, too flat to compare),
encodes the reference with a second, differently seeded one (the optional ``encoder_vae``, so whether it is
used shows in the output) and randomises the pose guider's zero conv (an untrained guider adds zeros, so the
poses would not matter). Built pipelines are shared per module; tests that change one build their own.

Not applicable here: the batch tests (one video per call, no num_images_per_prompt), attention slicing and
xformers (the reference attention processors), CPU offload (needs an accelerator).
"""

import copy
import inspect
import json
import re
import tempfile

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import make_pose_frames, make_reference, write_tiny_lora
from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, LCMScheduler
from diffusers.utils import export_to_video
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTokenizer

from turbonext import TurboNextPipeline
from turbonext.models.configs import SCHEDULER, TINY_TAESD, TINY_VAE, build_components
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.tiny_tokenizer import write_tiny_tokenizer
from turbonext.models.unet_motion import TurboNextUNetMotionModel
from turbonext.pipelines import pipeline_turbonext
from turbonext.pipelines.pipeline_turbonext import EXAMPLE_DOC_STRING


SIZE, FRAMES, STEPS = 64, 3, 2
MODULES = ("vae", "text_encoder", "unet", "reference_unet", "pose_guider", "encoder_vae")
# diffusers' `params` / `required_optional_params`: what __call__ must accept
PARAMS = frozenset(["reference_image", "pose_images", "prompt", "negative_prompt", "prompt_embeds",
                    "negative_prompt_embeds", "guidance_scale", "cross_attention_kwargs", "reference_pose"])
REQUIRED_OPTIONAL_PARAMS = frozenset(["num_inference_steps", "generator", "latents", "output_type", "return_dict",
                                      "callback_on_step_end", "callback_on_step_end_tensor_inputs"])


def get_dummy_components(seed: int = 0, vae_blocks: int = 4) -> dict:
    """Tiny seeded components (same seed -> same weights). ``vae_blocks`` < 4 gives VAEs with fewer
    downsamplings (a VAE scale factor of 2 ** (vae_blocks - 1)) and a pose guider to match."""
    comps = build_components("tiny", seed=seed)
    torch.manual_seed(seed + 1)
    vae_config = dict(TINY_VAE, block_out_channels=(8,) * vae_blocks, down_block_types=("DownEncoderBlock2D",) * vae_blocks,
                      up_block_types=("UpDecoderBlock2D",) * vae_blocks)
    vae = comps["vae"] if vae_blocks == 4 else AutoencoderKL(**vae_config)
    encoder_vae = AutoencoderKL(**vae_config)  # other weights than `vae`
    guider = comps["pose_guider"]
    if vae_blocks != 4:
        guider = PoseGuider(block_out_channels=(8, 16, 16)[: vae_blocks - 1], out_channels=guider.config.out_channels)
    torch.nn.init.normal_(guider.zero_conv.weight, std=0.2)
    with tempfile.TemporaryDirectory() as folder:
        write_tiny_tokenizer(folder)
        tokenizer = CLIPTokenizer.from_pretrained(folder)
    return dict(
        vae=vae, text_encoder=comps["text_encoder"], tokenizer=tokenizer,
        unet=TurboNextUNetMotionModel.from_unet2d(comps["unet2d"], comps["motion_adapter"]),
        reference_unet=copy.deepcopy(comps["unet2d"]), pose_guider=guider, scheduler=LCMScheduler(**SCHEDULER),
        encoder_vae=encoder_vae,
    )


def get_dummy_inputs(seed: int = 0, num_frames: int = FRAMES, **overrides) -> dict:
    """A reference image, ``num_frames`` 64x64 pose frames, 2 steps, a CPU generator, np output."""
    inputs = dict(reference_image=make_reference(SIZE), pose_images=make_pose_frames(num_frames, SIZE),
                  num_inference_steps=STEPS, generator=torch.Generator("cpu").manual_seed(seed), output_type="np")
    inputs.update(overrides)
    return inputs


def make_pipe(**components) -> TurboNextPipeline:
    pipe = TurboNextPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def frames(pipe, **overrides) -> np.ndarray:
    """The clip (F, H, W, 3) of one call on the dummy inputs."""
    return pipe(**get_dummy_inputs(**overrides)).frames[0]


def assert_same(actual, expected, atol=1e-5):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= atol, f"max diff {np.abs(actual - expected).max()}"


def assert_differ(actual, expected, min_mean=1e-3):
    """Reruns of one computation are bit-identical here, so a mean difference over ``min_mean`` is an effect."""
    diff = float(np.abs(np.asarray(actual) - np.asarray(expected)).mean())
    assert diff > min_mean, f"mean diff {diff}: the change had no effect"


class UNetCalls:
    """Counts the main UNet's forward calls while the context is open."""

    def __init__(self, pipe):
        self.unet, self.count = pipe.unet, 0

    def __enter__(self):
        self.handle = self.unet.register_forward_hook(lambda *args: setattr(self, "count", self.count + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module: tiny tensors gain nothing from two, and two threads spin against
    whatever else shares the two cores (measured here: 0.07 s per call on one thread, 0.3-9 s on two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipe():
    """Shared: tests must not change its weights, components or settings (build one with make_pipe)."""
    return make_pipe(**get_dummy_components())


@pytest.fixture(scope="module")
def expected(pipe) -> np.ndarray:
    """The dummy inputs' output, frames[0]: (F, H, W, 3)."""
    out = pipe(**get_dummy_inputs()).frames
    assert isinstance(out, np.ndarray) and out.shape == (1, FRAMES, SIZE, SIZE, 3)
    return out[0]


@pytest.fixture(scope="module")
def expected_without_encoder_vae(pipe) -> np.ndarray:
    """Output with encoder_vae=None (the reference encoded by ``vae``): differs from ``expected``."""
    return frames(make_pipe(**{**pipe.components, "encoder_vae": None}))


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "pipe"
    pipe.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------- signature, docs
def test_call_signature_has_diffusers_params():
    parameters = set(inspect.signature(TurboNextPipeline.__call__).parameters)
    assert PARAMS <= parameters, PARAMS - parameters
    assert REQUIRED_OPTIONAL_PARAMS <= parameters, REQUIRED_OPTIONAL_PARAMS - parameters


def test_call_docstring_has_example_and_args():
    doc = TurboNextPipeline.__call__.__doc__
    examples = doc.index("Examples:")
    args = doc.index("Args:")
    returns = doc.index("Returns:")
    assert args < examples < returns
    example = doc[examples:returns]
    for line in EXAMPLE_DOC_STRING.strip().splitlines()[1:]:  # replace_example_docstring put it in
        assert line.strip() in example
    assert "export_to_video(output.frames[0]" in example
    # entries "name (`type`...):" or "a / b (`type`...):", one per parameter
    documented = {name for match in re.finditer(r"^\s+(\w+(?: / \w+)*) \([`*]", doc[args:examples], re.M)
                  for name in match.group(1).split(" / ")}
    assert set(inspect.signature(TurboNextPipeline.__call__).parameters) - {"self"} == documented


@pytest.mark.slow
def test_call_docstring_example_runs(tmp_path, monkeypatch):
    """The example as written (the embedded demo model, 16 frames at 256 px, 4 steps): ~3 s on one thread."""
    code = "\n".join(line.strip()[4:] for line in EXAMPLE_DOC_STRING.splitlines()
                     if line.strip().startswith((">>> ", "... ")))
    assert "export_to_video" in code
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "EXAMPLE_DOC_STRING", "exec"), {})
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "turbonext.mp4").shape == (16, 256, 256, 3)


# ---------------------------------------------------------------------------------------------- output format
def test_output_is_batched_like_diffusers_video_pipelines(pipe, expected):
    assert expected.dtype == np.float32 and 0 <= expected.min() and expected.max() <= 1
    pt = pipe(**get_dummy_inputs(output_type="pt")).frames
    assert isinstance(pt, torch.Tensor) and pt.shape == (1, FRAMES, 3, SIZE, SIZE)
    assert_same(pt[0].permute(0, 2, 3, 1).numpy(), expected)
    pil = pipe(**get_dummy_inputs(output_type="pil")).frames
    assert isinstance(pil, list) and len(pil) == 1 and isinstance(pil[0], list) and len(pil[0]) == FRAMES
    assert all(isinstance(f, PIL.Image.Image) and f.size == (SIZE, SIZE) and f.mode == "RGB" for f in pil[0])
    assert np.abs(np.stack([np.asarray(f, np.float32) for f in pil[0]]) - expected * 255).max() <= 1
    latent = pipe(**get_dummy_inputs(output_type="latent")).frames
    assert latent.shape == (1, 4, FRAMES, SIZE // 8, SIZE // 8)


@pytest.mark.parametrize("output_type", ["np", "pil"])
def test_export_to_video_takes_frames_0(pipe, expected, output_type, tmp_path):
    import imageio.v3 as iio

    clip = expected if output_type == "np" else pipe(**get_dummy_inputs(output_type="pil")).frames[0]
    path = export_to_video(clip, str(tmp_path / "clip.mp4"), fps=4)
    video = iio.imread(path)
    assert video.shape[:3] == (FRAMES, SIZE, SIZE)
    assert np.abs(video.astype(np.float32).mean() - expected.mean() * 255) < 10  # the clip, not noise or black


def test_dict_tuple_outputs_equivalent(pipe, expected):
    out = pipe(**get_dummy_inputs(return_dict=False))
    assert isinstance(out, tuple) and len(out) == 1
    assert_same(out[0][0], expected, atol=0)


def test_seeded_components_and_inputs_are_deterministic(pipe, expected):
    assert_same(frames(make_pipe(**get_dummy_components())), expected, atol=0)  # get_dummy_components is seeded
    assert_differ(frames(pipe, seed=1), expected)  # the generator is used


def test_latents_input(pipe, expected):
    """Passing the latents the generator would have drawn (and the generator after drawing them) is the same."""
    generator = torch.Generator("cpu").manual_seed(0)
    latents = randn_tensor((1, 4, FRAMES, SIZE // 8, SIZE // 8), generator=generator, dtype=torch.float32)
    assert_same(pipe(**get_dummy_inputs(latents=latents, generator=generator)).frames[0], expected, atol=0)
    with pytest.raises(ValueError, match="latents must have shape"):
        pipe(**get_dummy_inputs(latents=latents[:, :, :2]))


# ---------------------------------------------------------------------------------------------- save / load
def test_save_load_local(expected, saved):
    assert not list(saved.rglob("*.bin"))  # safetensors
    loaded = TurboNextPipeline.from_pretrained(saved)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.unet) is TurboNextUNetMotionModel and type(loaded.scheduler) is LCMScheduler
    assert_same(frames(loaded), expected)


def test_save_load_dtype(saved):
    """diffusers' test_save_load_float16, on a CPU: torch_dtype reaches every component."""
    loaded = TurboNextPipeline.from_pretrained(saved, torch_dtype=torch.float64)
    assert {name: getattr(loaded, name).dtype for name in MODULES} == {name: torch.float64 for name in MODULES}


def test_save_load_optional_components(pipe, expected, expected_without_encoder_vae, tmp_path):
    assert "encoder_vae" in TurboNextPipeline._optional_components
    assert_differ(expected_without_encoder_vae, expected, min_mean=1e-4)  # the optional component is used when set
    without = make_pipe(**pipe.components)
    setattr(without, "encoder_vae", None)  # diffusers' way
    assert_same(frames(without), expected_without_encoder_vae, atol=0)
    without.save_pretrained(tmp_path / "pipe")
    assert json.loads((tmp_path / "pipe" / "model_index.json").read_text())["encoder_vae"] == [None, None]
    assert not (tmp_path / "pipe" / "encoder_vae").exists()
    loaded = TurboNextPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.encoder_vae is None
    assert_same(frames(loaded), expected_without_encoder_vae)


def test_optional_component_can_be_left_out_when_loading(saved):
    assert (saved / "encoder_vae").is_dir()
    assert TurboNextPipeline.from_pretrained(saved, encoder_vae=None).encoder_vae is None


# ---------------------------------------------------------------------------------------------- components
def test_components_function(pipe, expected):
    params = inspect.signature(TurboNextPipeline.__init__).parameters
    # settings (bools, numbers, strings: saved in model_index.json) are not components, as in diffusers' own test
    settings = {n for n, p in params.items() if isinstance(p.default, (bool, int, float, str))
                or n in ("embedded_guidance_scale", "default_num_inference_steps", "default_guidance_scale")}
    assert settings == {"reference_in_uncond", "embedded_guidance_scale", "pose_style", "stream_update",
                        "default_num_inference_steps", "default_guidance_scale"}
    init = set(params) - {"self"} - settings
    assert set(pipe.components) == init
    assert all(pipe.components[name] is getattr(pipe, name) for name in init)
    again = make_pipe(**pipe.components)
    assert_same(frames(again), expected, atol=0)


def test_from_pipe_gives_the_same_output(pipe, expected, expected_without_encoder_vae):
    other = TurboNextPipeline.from_pipe(pipe)
    other.set_progress_bar_config(disable=True)
    assert type(other) is TurboNextPipeline and other.unet is pipe.unet
    assert_same(frames(other), expected, atol=0)
    overridden = TurboNextPipeline.from_pipe(pipe, encoder_vae=None)
    overridden.set_progress_bar_config(disable=True)
    assert overridden.encoder_vae is None and pipe.encoder_vae is not None
    assert_same(frames(overridden), expected_without_encoder_vae, atol=0)


@pytest.fixture(scope="module")
def float32_run():
    """Fixed float32 noise and its float32 output with a deterministic scheduler (DDIM, eta 0): the noise a
    generator draws depends on the dtype (the latents and LCM's per-step noise), so dtype runs compare on this."""
    latents = torch.randn((1, 4, FRAMES, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(0))
    pipe = make_ddim_pipe()
    return latents, frames(pipe, latents=latents)


def make_ddim_pipe() -> TurboNextPipeline:
    components = get_dummy_components()
    return make_pipe(**{**components, "scheduler": DDIMScheduler.from_config(components["scheduler"].config)})


def test_to_float64_changes_every_component_and_runs(float32_run):
    """A CPU stand-in for diffusers' float16 test: to(float64) and back, the reference cache following."""
    latents, expected = float32_run
    pipe = make_ddim_pipe()
    assert {name: getattr(pipe, name).dtype for name in MODULES} == {name: torch.float32 for name in MODULES}
    assert_same(frames(pipe, latents=latents), expected, atol=0)  # sets the reference
    pipe.to(torch.float64)
    assert {name: getattr(pipe, name).dtype for name in MODULES} == {name: torch.float64 for name in MODULES}
    assert pipe.dtype == torch.float64
    assert all(t.dtype == torch.float64 for t in pipe.reference_state.cache.tokens.values())
    assert_same(frames(pipe, latents=latents, reference_image=None), expected, atol=1e-4)  # the cached reference
    pipe.to(torch.float32)  # float32 -> float64 -> float32 is exact
    assert {name: getattr(pipe, name).dtype for name in MODULES} == {name: torch.float32 for name in MODULES}
    assert_same(frames(pipe, latents=latents), expected)


def test_to_bfloat16_changes_every_component_and_runs(float32_run):
    latents, expected = float32_run
    pipe = make_ddim_pipe().to(torch.bfloat16)
    assert {name: getattr(pipe, name).dtype for name in MODULES} == {name: torch.bfloat16 for name in MODULES}
    out = frames(pipe, latents=latents)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out - expected).mean() < 0.02  # bfloat16 rounding, not another picture


# ---------------------------------------------------------------------------------------------- callbacks, state
def test_callback_on_step_end_gets_the_requested_tensors_once_per_step(pipe):
    seen = []

    def callback(p, i, t, kwargs):
        assert p is pipe
        seen.append((i, t, {k: (v.shape if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}))
        return {}

    requested = list(pipe._callback_tensor_inputs)
    pipe(**get_dummy_inputs(prompt="a dancer", negative_prompt="blurry", guidance_scale=2.0, output_type="latent",
                            callback_on_step_end=callback, callback_on_step_end_tensor_inputs=requested))
    assert [s[0] for s in seen] == list(range(STEPS))
    assert [int(s[1]) for s in seen] == [int(t) for t in pipe.scheduler.timesteps]
    for _, _, shapes in seen:
        assert set(shapes) == set(requested)
        assert shapes["latents"] == (1, 4, FRAMES, SIZE // 8, SIZE // 8)
        assert shapes["prompt_embeds"] == shapes["negative_prompt_embeds"] == (1, 77, 32)
    seen.clear()
    pipe(**get_dummy_inputs(output_type="latent", callback_on_step_end=callback,
                            callback_on_step_end_tensor_inputs=["latents"]))
    assert len(seen) == STEPS and all(set(shapes) == {"latents"} for _, _, shapes in seen)


def test_callback_can_replace_latents(pipe, expected):
    def keep(p, i, t, kwargs):
        return {}

    def zero_last(p, i, t, kwargs):
        return {"latents": torch.zeros_like(kwargs["latents"])} if i == STEPS - 1 else {}

    assert_same(frames(pipe, callback_on_step_end=keep), expected, atol=0)
    latents = pipe(**get_dummy_inputs(output_type="latent", callback_on_step_end=zero_last)).frames
    assert latents.abs().max() == 0
    assert_differ(frames(pipe, callback_on_step_end=zero_last), expected)


def test_callback_tensor_inputs_are_validated(pipe):
    with pytest.raises(ValueError, match="not_a_tensor"):
        pipe(**get_dummy_inputs(callback_on_step_end=lambda *a: {},
                                callback_on_step_end_tensor_inputs=["latents", "not_a_tensor"]))


def test_interrupt_skips_the_remaining_steps(pipe):
    steps = 3
    intermediate = []

    def record(p, i, t, kwargs):
        if i == 0:
            intermediate.append(kwargs["latents"].clone())
        return {}

    def interrupt(p, i, t, kwargs):
        if i == 0:
            p._interrupt = True
        return {}

    with UNetCalls(pipe) as full:
        full_latents = pipe(**get_dummy_inputs(num_inference_steps=steps, output_type="latent",
                                               callback_on_step_end=record)).frames
    with UNetCalls(pipe) as interrupted:
        out = pipe(**get_dummy_inputs(num_inference_steps=steps, output_type="latent",
                                      callback_on_step_end=interrupt)).frames
    assert (full.count, interrupted.count) == (steps, 1)
    assert pipe.interrupt is True
    torch.testing.assert_close(out, intermediate[0], atol=0, rtol=0)  # diffusers' test_interrupt
    assert (out - full_latents).abs().max() > 1e-3
    with UNetCalls(pipe) as after:  # the next call starts uninterrupted
        pipe(**get_dummy_inputs(num_inference_steps=steps, output_type="latent"))
    assert after.count == steps and pipe.interrupt is False


@pytest.mark.parametrize("steps", [1, 3])
def test_num_timesteps(pipe, steps):
    pipe(**get_dummy_inputs(num_inference_steps=steps, output_type="latent"))
    assert pipe.num_timesteps == steps


def test_progress_bar_advances_once_per_step_over_several_windows(pipe, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, total):
            self.total, self.n = total, 0

        def update(self, n=1):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def progress_bar(iterable=None, total=None):
        bars.append(Bar(total))
        return bars[-1]

    monkeypatch.setattr(pipe, "progress_bar", progress_bar)
    with UNetCalls(pipe) as calls:  # 6 frames in windows [0, 4) and [2, 6): 2 UNet calls per step
        pipe(**get_dummy_inputs(num_frames=6, window_size=4, window_overlap=2, output_type="latent"))
    assert calls.count == 2 * STEPS
    assert [(bar.total, bar.n) for bar in bars] == [(STEPS, STEPS)]


def test_progress_bar_config_reaches_tqdm(pipe, monkeypatch):
    import io

    stream = io.StringIO()
    monkeypatch.setattr(pipe, "_progress_bar_config", {"file": stream, "disable": False, "desc": "denoise"})
    pipe(**get_dummy_inputs(num_frames=6, window_size=4, window_overlap=2, output_type="latent"))
    text = stream.getvalue()
    assert "denoise" in text and f"{STEPS}/{STEPS}" in text and f"{2 * STEPS}/{STEPS}" not in text


# ---------------------------------------------------------------------------------------------- text conditioning
def test_prompt_embeds_equal_prompt(pipe, expected):
    with_prompt = frames(pipe, prompt="a dancer")
    assert_differ(with_prompt, expected)  # the prompt matters
    embeds = pipe.encode_prompt("a dancer", pipe._execution_device)
    assert embeds.shape == (1, 77, 32)
    assert_same(frames(pipe, prompt_embeds=embeds), with_prompt, atol=0)
    with pytest.raises(ValueError, match="prompt or prompt_embeds"):
        pipe(**get_dummy_inputs(prompt="a dancer", prompt_embeds=embeds))


def test_negative_prompt_embeds_equal_negative_prompt(pipe):
    cfg = dict(prompt="a dancer", guidance_scale=2.0)
    with_negative = frames(pipe, negative_prompt="blurry", **cfg)
    assert_differ(with_negative, frames(pipe, **cfg))  # the negative prompt matters
    negative = pipe.encode_prompt("blurry", pipe._execution_device)
    assert_same(frames(pipe, negative_prompt_embeds=negative, **cfg), with_negative, atol=0)
    positive = pipe.encode_prompt("a dancer", pipe._execution_device)
    both = frames(pipe, prompt_embeds=positive, negative_prompt_embeds=negative, guidance_scale=2.0)
    assert_same(both, with_negative, atol=0)
    with pytest.raises(ValueError, match="negative_prompt or negative_prompt_embeds"):
        pipe(**get_dummy_inputs(negative_prompt="blurry", negative_prompt_embeds=negative, **cfg))


@pytest.fixture(scope="module")
def lora_pipe(tmp_path_factory):
    """A pipeline of its own with a random LoRA adapter ("style") loaded into the main UNet."""
    pipe = make_pipe(**get_dummy_components())
    folder = tmp_path_factory.mktemp("lora")
    pipe.reference_unet.save_pretrained(folder / "unet")  # the base UNet's architecture
    lora = write_tiny_lora(folder / "unet", folder / "lora", seed=3)
    pipe.load_lora_weights(lora, weight_name="pytorch_lora_weights.safetensors", adapter_name="style")
    return pipe


def test_lora_adapter_and_per_call_scale(lora_pipe, expected):
    with_lora = frames(lora_pipe)
    assert_differ(with_lora, expected)  # the adapter does something
    try:
        lora_pipe.disable_lora()
        assert_same(frames(lora_pipe), expected)  # disabled: the base weights' output
    finally:
        lora_pipe.enable_lora()
    kwargs = {"scale": 0.0}
    assert_differ(frames(lora_pipe, cross_attention_kwargs=kwargs), with_lora)  # the scale reaches the UNet
    assert kwargs == {"scale": 0.0}  # the caller's dict is left alone
    assert_same(frames(lora_pipe), with_lora, atol=0)  # the scale applied to that call only
    try:  # without reference attention, scale 0 is exactly the adapter disabled
        lora_pipe.reference_state.enabled = False
        scale_zero = frames(lora_pipe, cross_attention_kwargs={"scale": 0.0})
        lora_pipe.disable_lora()
        assert_same(scale_zero, frames(lora_pipe))
    finally:
        lora_pipe.enable_lora()
        lora_pipe.reference_state.enabled = True


def test_cross_attention_kwargs_lora_scale_zero_equals_adapter_disabled(lora_pipe, expected):
    """diffusers' LoRA-scale check: {"scale": 0.0} with an adapter loaded == the adapter disabled (== the base
    output, test_lora_adapter_and_per_call_scale), with reference attention on."""
    assert_same(frames(lora_pipe, cross_attention_kwargs={"scale": 0.0}), expected)
    cached = lora_pipe.reference_state.cache
    kv = {name: k.clone() for name, (k, _) in cached.kv.items()}
    frames(lora_pipe, reference_image=None, cross_attention_kwargs={"scale": 0.0})
    assert all(torch.equal(cached.kv[name][0], k) for name, k in kv.items())  # the shared cache is left as it was


# ---------------------------------------------------------------------------------------------- check_inputs
def check_args(**overrides) -> dict:
    args = dict(reference_image=make_reference(SIZE), pose_images=make_pose_frames(2, SIZE), prompt=None,
                negative_prompt=None, prompt_embeds=None, negative_prompt_embeds=None, num_inference_steps=2,
                guidance_scale=1.0, output_type="np", window_size=16, window_overlap=4,
                callback_on_step_end_tensor_inputs=["latents"])
    args.update(overrides)
    return args


_POSE = np.zeros((SIZE, SIZE, 3), np.uint8)
BAD_INPUTS = {  # id: (check_inputs overrides, what the message says)
    "no-pose-images": (dict(pose_images=None), "pose_images is required"),
    "empty-list": (dict(pose_images=[]), "empty"),
    "empty-array": (dict(pose_images=np.zeros((0, SIZE, SIZE, 3), np.uint8)), "empty"),
    "mixed-sizes": (dict(pose_images=[_POSE, np.zeros((72, SIZE, 3), np.uint8)]), "same size"),
    "not-divisible-by-8": (dict(pose_images=[np.zeros((60, SIZE, 3), np.uint8)]), "60x64 .* divisible by 8"),
    "rgba-array": (dict(pose_images=[np.zeros((SIZE, SIZE, 4), np.uint8)]), r"\(H, W, 3\)"),
    "output-type": (dict(output_type="gif"), "output_type must be one of .*'gif'"),
    "zero-steps": (dict(num_inference_steps=0), "num_inference_steps must be an integer >= 1"),
    "float-steps": (dict(num_inference_steps=2.0), "num_inference_steps must be an integer >= 1"),
    "negative-guidance": (dict(guidance_scale=-1.0), "guidance_scale must be a number >= 0"),
    "zero-window": (dict(window_size=0), "window must be >= 1"),
    "overlap-equals-window": (dict(window_size=4, window_overlap=4), r"overlap must be in \[0, window\)"),
    "negative-overlap": (dict(window_overlap=-1), r"overlap must be in \[0, window\)"),
    "unknown-callback-tensor": (dict(callback_on_step_end_tensor_inputs=["latents", "noise_pred"]), "noise_pred"),
    "prompt-and-embeds": (dict(prompt="a", prompt_embeds=torch.zeros(1, 77, 32)), "prompt or prompt_embeds"),
    "negative-prompt-and-embeds": (dict(negative_prompt="a", negative_prompt_embeds=torch.zeros(1, 77, 32)),
                                   "negative_prompt or negative_prompt_embeds"),
    "prompt-list": (dict(prompt=["a", "b"]), "prompt must be a string"),
    "embeds-2d": (dict(prompt_embeds=torch.zeros(77, 32)), r"prompt_embeds must have shape \(1, sequence, dim\)"),
    "embeds-shapes-differ": (dict(prompt_embeds=torch.zeros(1, 77, 32), negative_prompt_embeds=torch.zeros(1, 76, 32)),
                             "same shape"),
    "reference-2d": (dict(reference_image=np.zeros((SIZE, SIZE), np.uint8)), r"reference_image.*\(H, W, 3\)"),
}


@pytest.mark.parametrize("overrides, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_check_inputs_raises_a_useful_error(pipe, overrides, message):
    with pytest.raises(ValueError, match=message):
        pipe.check_inputs(**check_args(**overrides))


def test_call_checks_inputs_before_any_work(pipe):
    ran = []
    handles = [m.register_forward_hook(lambda *a: ran.append(1)) for m in (pipe.pose_guider, pipe.reference_unet)]
    try:
        for overrides, message in list(BAD_INPUTS.values())[:8]:
            with pytest.raises(ValueError, match=message):
                pipe(**{**check_args(**overrides), "callback_on_step_end": None})
    finally:
        for handle in handles:
            handle.remove()
    assert ran == []


def test_check_inputs_only_validates(pipe, monkeypatch):
    """It converts nothing and returns nothing: the inputs and the reference are left as they were."""
    def no_conversion(*args, **kwargs):
        raise AssertionError("check_inputs converted an image")

    monkeypatch.setattr(pipeline_turbonext, "images_to_tensor", no_conversion)
    monkeypatch.setattr(pipeline_turbonext, "image_to_tensor", no_conversion)
    poses = [PIL.Image.fromarray(p) for p in make_pose_frames(2, SIZE)]
    reference = make_reference(SIZE)
    args = check_args(pose_images=list(poses), reference_image=reference.copy(),
                      prompt_embeds=torch.ones(1, 77, 32), negative_prompt_embeds=torch.ones(1, 77, 32))
    cache = pipe.reference_state.cache
    assert pipe.check_inputs(**args) is None
    assert all(a is b for a, b in zip(args["pose_images"], poses)) and len(args["pose_images"]) == 2
    np.testing.assert_array_equal(args["reference_image"], reference)
    assert args["prompt_embeds"].eq(1).all() and args["negative_prompt_embeds"].eq(1).all()
    assert pipe.reference_state.cache is cache


# ---------------------------------------------------------------------------------------------- vae_scale_factor
def test_vae_scale_factor_comes_from_the_vae_config(pipe):
    assert pipe.vae_scale_factor == 8 == 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    assert pipe.video_processor.config.vae_scale_factor == 8
    tiny = AutoencoderTiny(**dict(TINY_TAESD, encoder_block_out_channels=(8, 8, 8), num_encoder_blocks=(1, 1, 1),
                                  decoder_block_out_channels=(8, 8, 8), num_decoder_blocks=(1, 1, 1)))
    assert make_pipe(**{**pipe.components, "vae": tiny, "encoder_vae": None}).vae_scale_factor == 4


def test_pipeline_runs_at_the_vae_scale_factor_of_a_three_block_vae():
    pipe = make_pipe(**get_dummy_components(vae_blocks=3))
    assert pipe.vae_scale_factor == 4
    latents = pipe(**get_dummy_inputs(num_inference_steps=1, output_type="latent")).frames
    assert latents.shape == (1, 4, FRAMES, SIZE // 4, SIZE // 4)
    out = pipe(**get_dummy_inputs(num_inference_steps=1)).frames
    assert out.shape == (1, FRAMES, SIZE, SIZE, 3)
    pipe.check_inputs(**check_args(pose_images=[np.zeros((60, 60, 3), np.uint8)]))  # 60 = 4 x 15
    with pytest.raises(ValueError, match="divisible by 4"):
        pipe.check_inputs(**check_args(pose_images=[np.zeros((62, 62, 3), np.uint8)]))
