"""The embedded demo model: ships with the package, loads offline by name, and renders held-out
identities well enough to pass stated minimums (numbers in turbonext/demo/README.md)."""

import numpy as np
import torch

from turbonext import TurboNextPipeline
from turbonext.evaluation.metrics import background_brightness, silhouette_iou, ssim
from turbonext.jobs.driving_inputs import synthetic_demo_inputs
from turbonext.loaders.hub import demo_model_path


# Measured on these 4 frames (seed 0, CPU, fp32, torch 2.13 and 2.14), against the ground truth:
#   the model          SSIM 0.840/0.826/0.858/0.855 (mean 0.845)  IoU 0.599/0.564/0.667/0.663 (mean 0.623)
#   a black frame      SSIM 0.856/0.857/0.856/0.853 (mean 0.855)  IoU 0.0
#   the reference copy SSIM 0.741/0.747/0.746/0.746 (mean 0.745)  IoU 0.194/0.228/0.234/0.241 (mean 0.224)
# SSIM is dominated by the black background: black beats the model on it, so SSIM is only a bar against the
# reference copy (a person in the wrong pose). IoU is the bar against both.
MIN_IOU = 0.5
IOU_MARGIN = 0.25  # over the better baseline (measured 0.40)
SSIM_MARGIN = 0.05  # over the reference copy (measured 0.10)


def clip(output) -> list:
    """The clip's frames; ``frames[0]`` when the output is batched like diffusers' video pipelines."""
    frames = output.frames
    return frames[0] if isinstance(frames[0], (list, tuple)) else frames


def test_demo_model_ships_small_and_in_safetensors():
    folder = demo_model_path()
    assert (folder / "model_index.json").is_file()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]


def test_demo_model_renders_a_held_out_identity():
    """The model's frames must beat two trivial renderers on the same frames: a black frame and a copy of the
    reference (the right person, the wrong pose). A model that drew nothing, or ignored the poses, fails."""
    pipe = TurboNextPipeline.from_pretrained("turbonext-demo")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.dtype == torch.float32  # stored in fp16, run in fp32 on a CPU
    ref, poses, truth, ref_pose = synthetic_demo_inputs(size=256, num_frames=4)
    frames = clip(pipe(reference_image=ref, pose_images=poses, generator=torch.Generator().manual_seed(0),
                       reference_pose=ref_pose if pipe.reads_reference_pose else None))

    def scores(candidates):
        pairs = [(np.asarray(f), np.asarray(t)) for f, t in zip(candidates, truth)]
        return np.mean([ssim(f, t) for f, t in pairs]), np.mean([silhouette_iou(f, t) for f, t in pairs])

    model_ssim, model_iou = scores(frames)
    black_ssim, black_iou = scores([np.zeros_like(np.asarray(t)) for t in truth])
    copy_ssim, copy_iou = scores([ref] * len(truth))
    measured = dict(model=(model_ssim, model_iou), black=(black_ssim, black_iou), copy=(copy_ssim, copy_iou))
    assert model_iou >= max(black_iou, copy_iou) + IOU_MARGIN, measured
    assert model_ssim >= copy_ssim + SSIM_MARGIN, measured
    assert model_iou >= MIN_IOU, measured


def figure_colour_error(frames, truth) -> float:
    """Mean over frames of |mean RGB of the figure's pixels - the ground truth's| (0-255)."""
    errors = []
    for frame, gt in zip(frames, truth):
        f, t = np.asarray(frame, dtype=np.float64), np.asarray(gt, dtype=np.float64)
        figure = t.max(axis=-1) > 30
        errors.append(np.abs(f[figure].mean(0) - t[figure].mean(0)).mean())
    return float(np.mean(errors))


def test_demo_model_takes_the_colours_from_the_reference():
    # Measured (id119, 4 frames, seed 0, CPU): 29.9 with reference attention, 47.5 without (ratio 0.63).
    from turbonext.evaluation.ablations import reference_attention_disabled

    pipe = TurboNextPipeline.from_pretrained("turbonext-demo")
    pipe.set_progress_bar_config(disable=True)
    ref, poses, truth, _ = synthetic_demo_inputs(size=256, num_frames=4)
    with_reference = clip(pipe(reference_image=ref, pose_images=poses, generator=torch.Generator().manual_seed(0)))
    pipe.clear_reference()
    with reference_attention_disabled(pipe):
        without = clip(pipe(reference_image=ref, pose_images=poses, generator=torch.Generator().manual_seed(0)))
    assert figure_colour_error(with_reference, truth) <= 0.8 * figure_colour_error(without, truth)


def test_demo_model_backgrounds_stay_clean():
    # A frame whose initial noise has a channel mean a few standard errors from zero used to come out with a
    # noisy, tinted background (previous model, seed 0: frame 2 at 22.5 of 255). The shipped model was
    # fine-tuned with offset noise; measured on these 8 frames: every frame <= 4.7
    # (examples/demo_background_check.py; turbonext/demo/README.md "Noisy backgrounds").
    pipe = TurboNextPipeline.from_pretrained("turbonext-demo")
    pipe.set_progress_bar_config(disable=True)
    ref, poses, truth, _ = synthetic_demo_inputs(size=256, num_frames=8)
    frames = clip(pipe(reference_image=ref, pose_images=poses, generator=torch.Generator().manual_seed(0)))
    brightness = [background_brightness(f, t) for f, t in zip(frames, truth)]
    assert max(brightness) < 12.0, [round(b, 1) for b in brightness]


def test_load_for_inference_stores_the_vae_channels_last_on_a_cpu_without_changing_frames():
    from turbonext.pipelines.inference import load_for_inference

    pipe = load_for_inference("turbonext-demo", "cpu")
    conv = next(m for m in pipe.vae.decoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert pipe.unet.dtype == torch.float32 and conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = TurboNextPipeline.from_pretrained("turbonext-demo")
    latents = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast, slow = pipe.decode_latents(latents), plain.decode_latents(latents)
    assert fast.shape[-2:] == (256, 256) and fast.numel() == 3 * 3 * 256 * 256  # 3 frames, (B, C, F, H, W) or (F, C, H, W)
    assert (fast - slow).abs().max() < 1 / 255  # under one 8-bit level whether frames are in [0, 1] or [-1, 1]



def test_demo_model_streams_64_frames_without_drift():
    # The staggered window (frames at stepped noise levels in one temporal attention) decays into noise on this
    # model, which was never trained on that layout: window 8, seed 0, background 2-16 for the first 8 frames,
    # then 42 and more, 96-124 from frame 13 (turbonext/demo/README.md "Streaming drift"). Its config says
    # stream_schedule "uniform", which pipe.stream uses by default: every frame stays clean (this identity, seed 0,
    # 96 frames: 3.0-3.8 per 16 frames, benchmarks/long_stream_contact_sheet.py; 6 held-out scenes x 128
    # frames: at most 5.5). A stream that decays goes far above 12 within a few frames.
    pipe = TurboNextPipeline.from_pretrained("turbonext-demo")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.config.stream_schedule == "uniform"
    ref, poses, truth, _ = synthetic_demo_inputs(size=256, num_frames=64)
    session = pipe.stream(reference_image=ref, window=8, generator=torch.Generator().manual_seed(0))
    assert session.schedule_name == "uniform"
    frames = [f for p in poses for f in session.step(p)] + session.flush()
    assert len(frames) == 64
    brightness = [background_brightness(f, t) for f, t in zip(frames, truth)]
    assert max(brightness) < 12.0, [round(b, 1) for b in brightness]
    iou = [silhouette_iou(f, t) for f, t in zip(frames, truth)]
    assert np.mean(iou[32:]) > MIN_IOU, [round(v, 2) for v in iou]  # the figure is still drawn late in the stream
