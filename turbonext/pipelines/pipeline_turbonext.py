"""TurboNextPipeline: a reference image + a pose sequence -> a video of that person in those poses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    LCMScheduler,
    UNet2DConditionModel,
)
from diffusers import __version__ as diffusers_version
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.schedulers import SchedulerMixin
from diffusers.utils import logging, replace_example_docstring, scale_lora_layers, unscale_lora_layers
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import (
    CLIPImageProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

from turbonext.loaders.assemble import assemble_pipeline
from turbonext.loaders.hub import DEFAULT_LCM_LORA, DEFAULT_SDXL_LCM_LORA, DEMO_MODEL_NAME, resolve_pretrained_path
from turbonext.loaders.publish import push_folder, write_card
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.reference_attention import (
    NoReferenceError,
    ReferenceCache,
    ReferenceState,
    install_reference_processors,
    run_reference_net,
    weights_fingerprint,
)
from turbonext.models.unet_motion import TurboNextUNetMotionModel
from turbonext.pipelines.context_windows import (
    CHAIN_CONTEXTS,
    LONG_VIDEO_MODES,
    chained_windows,
    context_windows,
    denoise_chained,
    window_weights,
)
from turbonext.pipelines.pipeline_output import TurboNextPipelineOutput
from turbonext.pipelines.sdxl_conditioning import (
    add_time_ids,
    check_size_conditioning,
    encode_sdxl_prompt,
)
from turbonext.pipelines.transitions import join_latent_clips
from turbonext.pose.render import POSE_STYLES
from turbonext.schedulers.scheduling_staggered_lcm import UPDATES as STREAM_UPDATES
from turbonext.streaming.session import StreamSession
from turbonext.utils.images import check_image, check_images, image_to_tensor, images_to_tensor, resize_keeping_aspect


logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
MAX_STYLE_LORAS = 3  # style LoRAs stacked at once (load_style_lora), besides the fused LCM-LoRA
MAX_FRAMES = 1024  # __call__'s default max_frames: the whole decoded video is held in memory
MODES = ("fast", "hq")
HQ_NEGATIVE_PROMPT = "blurry, low quality, deformed, extra limbs, bad anatomy, watermark, text"
# What each mode fills in when the call leaves it unset (MimicMotion-Turbo's fast path, the base model's HQ one)
MODE_DEFAULTS = {"fast": dict(num_inference_steps=4, guidance_scale=1.0, negative_prompt=None),
                 "hq": dict(num_inference_steps=25, guidance_scale=6.0, negative_prompt=HQ_NEGATIVE_PROMPT)}
REFERENCE_POSE_REQUIRED = (
    "this model reads the reference image's pose (its pose guider has reference_features=True): pass "
    "reference_pose=<the reference image's pose map, rendered like the pose_images: COCO-17 limbs on black>. "
    "turbonext.jobs.reference.prepare_reference(image, detector, size).pose_map detects and renders it."
)
_PIPELINE_TAKES_DTYPE = tuple(int(v) for v in diffusers_version.split(".")[:2]) >= (0, 42)

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers.utils import export_to_video
        >>> from turbonext import TurboNextPipeline
        >>> from turbonext.jobs.driving_inputs import synthetic_demo_inputs

        >>> pipe = TurboNextPipeline.from_pretrained("turbonext-demo")  # embedded, offline; or a Hub repo id
        >>> demo = synthetic_demo_inputs(size=256, num_frames=16)  # a reference photo and pose maps
        >>> output = pipe(reference_image=demo.reference, pose_images=demo.poses, num_inference_steps=4,
        ...               generator=torch.Generator().manual_seed(0))
        >>> export_to_video(output.frames[0], "turbonext.mp4", fps=12)
        ```
"""


class TurboNextPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    r"""Pose transfer with SD1.5 + AnimateDiff motion modules, a cached ReferenceNet and a pose guider.

    Args:
        vae ([`AutoencoderTiny`] or [`AutoencoderKL`]): decodes latents (TAESD for speed).
        text_encoder ([`~transformers.CLIPTextModel`]): frozen CLIP text encoder.
        tokenizer ([`~transformers.CLIPTokenizer`]): its tokenizer.
        unet ([`TurboNextUNetMotionModel`]): the denoiser (per-frame timesteps, pose features after ``conv_in``).
        reference_unet ([`UNet2DConditionModel`]): the ReferenceNet, run once per reference image.
        pose_guider ([`PoseGuider`]): pose maps -> features added after the UNet's ``conv_in``.
        scheduler ([`SchedulerMixin`]): ``LCMScheduler`` for few-step sampling, or any diffusers scheduler.
        encoder_vae ([`AutoencoderKL`], *optional*): encodes the reference instead of ``vae``.
        image_encoder ([`~transformers.CLIPVisionModelWithProjection`], *optional*): image-prompt conditioning
            (as sd-image-variations and the AnimateAnyone family): the reference image's projected CLIP
            embedding, (1, 1, D), is the cross-attention context of both UNets instead of text; the
            unconditional context of classifier-free guidance is zeros. ``text_encoder`` and ``tokenizer``
            are then unused (and may be None).
        feature_extractor ([`~transformers.CLIPImageProcessor`], *optional*): the image encoder's preprocessing.
        text_encoder_2 ([`~transformers.CLIPTextModelWithProjection`], *optional*) / tokenizer_2: SDXL's second
            text encoder and its tokenizer (for UNets with ``addition_embed_type="text_time"``): its penultimate
            hidden states join the first encoder's as the context, its pooled output is the added ``text_embeds``
            (see :mod:`turbonext.pipelines.sdxl_conditioning`).
        reference_in_uncond (`bool`, defaults to True): under classifier-free guidance, whether the
            unconditional rows read the reference too (turbonext's models); the AnimateAnyone family's do not.
        embedded_guidance_scale (`float`, *optional*): for UNets with a guidance-scale embedding
            (``time_cond_proj_dim``, LCM-distilled), the ``w`` it is fed when ``guidance_scale`` is not > 1
            (RAIN: 2.5).
        pose_style (`str`, defaults to "turbonext"): how this model's pose maps are drawn
            (``turbonext.pose.render_pose(..., style=pipe.config.pose_style)``).
        default_num_inference_steps / default_guidance_scale (*optional*): what a call that leaves them unset uses
            (and no ``mode``): the model's own sampling (e.g. 30 steps and CFG 3.5 for Moore-AnimateAnyone);
            unset: 4 steps, no guidance (LCM).
        stream_update (`str`, defaults to "lcm"): the per-frame update of :meth:`stream` ("lcm", or "ddim" for
            models sampled with DDIM, as the AnimateAnyone family's); see
            :class:`~turbonext.schedulers.scheduling_staggered_lcm.StaggeredLCMSchedule`.
    """

    model_cpu_offload_seq = ("text_encoder->text_encoder_2->image_encoder->encoder_vae->reference_unet->pose_guider"
                             "->unet->vae")
    _optional_components = ["encoder_vae", "image_encoder", "feature_extractor", "text_encoder", "tokenizer",
                            "text_encoder_2", "tokenizer_2"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        vae: AutoencoderTiny | AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: TurboNextUNetMotionModel,
        reference_unet: UNet2DConditionModel,
        pose_guider: PoseGuider,
        scheduler: SchedulerMixin,
        encoder_vae: AutoencoderKL | None = None,
        image_encoder: CLIPVisionModelWithProjection | None = None,
        feature_extractor: CLIPImageProcessor | None = None,
        reference_in_uncond: bool = True,
        embedded_guidance_scale: float | None = None,
        pose_style: str = "turbonext",
        stream_update: str = "lcm",
        default_num_inference_steps: int | None = None,
        default_guidance_scale: float | None = None,
        text_encoder_2: CLIPTextModelWithProjection | None = None,
        tokenizer_2: CLIPTokenizer | None = None,
    ):
        super().__init__()
        if text_encoder is None and image_encoder is None:
            raise ValueError("a TurboNextPipeline needs a text_encoder (text conditioning) or an image_encoder "
                             "(the reference image's CLIP embedding as conditioning).")
        if stream_update not in STREAM_UPDATES:
            raise ValueError(f"stream_update must be one of {STREAM_UPDATES}, got {stream_update!r}.")
        if pose_style not in (*POSE_STYLES, "rain_face"):
            raise ValueError(f"pose_style must be one of {(*POSE_STYLES, 'rain_face')}, got {pose_style!r}.")
        if image_encoder is not None and feature_extractor is None:
            feature_extractor = CLIPImageProcessor()  # CLIP's own defaults: 224 px, CLIP mean and std
        if unet.config.get("addition_embed_type") == "text_time" and (
                text_encoder is None or text_encoder_2 is None or tokenizer_2 is None):
            raise ValueError("this UNet takes SDXL's added conditioning (addition_embed_type='text_time'): the pipeline "
                             "needs text_encoder, text_encoder_2 (CLIPTextModelWithProjection) and tokenizer_2.")
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, reference_unet=reference_unet,
            pose_guider=pose_guider, scheduler=scheduler, encoder_vae=encoder_vae, image_encoder=image_encoder,
            feature_extractor=feature_extractor, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
        )
        self.register_to_config(reference_in_uncond=bool(reference_in_uncond),
                                embedded_guidance_scale=embedded_guidance_scale, pose_style=pose_style,
                                stream_update=stream_update, default_num_inference_steps=default_num_inference_steps,
                                default_guidance_scale=default_guidance_scale)
        # The processors are stateless (the reference travels with each UNet call), so UNets shared with
        # another pipeline keep working for both; this pipeline's reference lives here only.
        install_reference_processors(reference_unet, "write")
        install_reference_processors(unet, "read")
        self.reference_state = ReferenceState()
        blocks = getattr(vae.config, "block_out_channels", None) or getattr(vae.config, "encoder_block_out_channels")
        self.vae_scale_factor = 2 ** (len(blocks) - 1)
        self.video_processor = VideoProcessor(do_resize=False, vae_scale_factor=self.vae_scale_factor)
        self._prompt_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "TurboNextPipeline":
        """Load from a local folder, a Hub repo id (downloaded with ``snapshot_download`` first), or
        ``"turbonext-demo"`` (the small model embedded in the package)."""
        path = resolve_pretrained_path(
            pretrained_model_name_or_path, revision=kwargs.pop("revision", None), cache_dir=kwargs.get("cache_dir"),
            local_files_only=kwargs.get("local_files_only", False), token=kwargs.get("token"),
        )
        kwargs.setdefault("use_safetensors", True)
        if str(pretrained_model_name_or_path) == DEMO_MODEL_NAME and "torch_dtype" not in kwargs and "dtype" not in kwargs:
            kwargs["torch_dtype"] = torch.float32  # stored in fp16 to stay small; runs in fp32 on a CPU
        if "torch_dtype" in kwargs and _PIPELINE_TAKES_DTYPE:  # diffusers >= 0.42 renamed it
            kwargs["dtype"] = kwargs.pop("torch_dtype")
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def from_components(cls, **kwargs) -> "TurboNextPipeline":
        """Assemble from public component repos (or local folders in their layouts); see
        :func:`turbonext.loaders.assemble.assemble_pipeline` for the arguments."""
        return assemble_pipeline(cls, **kwargs)

    def save_pretrained(self, save_directory, *args, push_to_hub: bool = False, **kwargs):
        """``DiffusionPipeline.save_pretrained``, minus loading settings: a tokenizer loaded offline keeps
        ``local_files_only=True`` in its init kwargs, which is not part of the model and is not saved.

        ``push_to_hub=True`` (with ``repo_id="owner/name"``, optional ``private``, ``token``,
        ``commit_message``) uploads the folder with a turbonext card and returns the commit URL.
        """
        hub = {k: kwargs.pop(k) for k in ("repo_id", "private", "token", "commit_message") if k in kwargs}
        if push_to_hub and not hub.get("repo_id"):
            raise ValueError("push_to_hub=True needs repo_id='owner/name' (the Hub model repo to upload to).")
        for tokenizer in (getattr(self, "tokenizer", None), getattr(self, "tokenizer_2", None)):
            if tokenizer is not None:
                tokenizer.init_kwargs.pop("local_files_only", None)
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if push_to_hub:
            write_card(save_directory, hub["repo_id"])
            return push_folder(save_directory, hub["repo_id"], private=bool(hub.get("private")),
                               token=hub.get("token"), commit_message=hub.get("commit_message"))
        return result

    def push_to_hub(self, repo_id: str, commit_message: str | None = None, private: bool | None = None,
                    token: str | None = None, **kwargs) -> str:
        """Upload the pipeline to the Hub model repo ``repo_id`` with a turbonext model card; returns the
        commit URL. (diffusers' own version writes a generic card naming diffusers' loader, which cannot
        load this pipeline: its classes live in turbonext.) More control: ``save_pretrained`` a folder,
        then ``turbonext push FOLDER REPO --eval-json ...``."""
        if kwargs:
            raise ValueError(f"push_to_hub takes repo_id, commit_message, private and token; not {sorted(kwargs)}. "
                             "For more, save_pretrained a folder and upload it with `turbonext push`.")
        with tempfile.TemporaryDirectory(prefix="turbonext-push-") as folder:
            return self.save_pretrained(folder, push_to_hub=True, repo_id=repo_id, private=private, token=token,
                                        commit_message=commit_message)

    def to(self, *args, **kwargs) -> "TurboNextPipeline":
        super().to(*args, **kwargs)
        cache = self.reference_state.cache
        offloading = getattr(self, "_offload_device", None) is not None and kwargs.get("silence_dtype_warnings")
        if cache is not None and not offloading:  # pipe.to() moves registered modules only: move the cache too
            device, dtype = self.reference_unet.device, self.reference_unet.dtype
            if any(t.device != device or t.dtype != dtype for t in cache.tokens.values()):
                cache.to(device, dtype)  # the K/V are recomputed on their next use
        # (model CPU offload parks the weights with to("cpu") after every call; the cache stays where it is used)
        return self

    # ------------------------------------------------------------------ LCM
    def fuse_lcm_lora(self, repo_or_path: str | None = None, scale: float = 1.0, weight_name: str | None = None,
                      **kwargs) -> "TurboNextPipeline":
        """Load LCM-LoRA (peft or kohya keys), fuse it into the main UNet and switch to ``LCMScheduler``.
        ``repo_or_path`` defaults to the backbone's (lcm-lora-sdv1-5, or lcm-lora-sdxl for SDXL).

        Other LoRA adapters loaded before (styles) stay loaded, with the same activity and scales.
        """
        repo_or_path, weight_name = _lora_file(repo_or_path or self._default_lcm_lora(), weight_name)
        before = _lora_state(self.unet)
        self.load_lora_weights(repo_or_path, weight_name=weight_name, adapter_name="lcm", use_safetensors=True, **kwargs)
        self.fuse_lora(components=["unet"], lora_scale=scale, adapter_names=["lcm"])
        self._lcm_fused = True
        if set(self.get_list_adapters().get("unet", [])) == {"lcm"}:
            self.unload_lora_weights()  # no other adapter: drop the LoRA layers entirely, keep the fused weights
        else:  # keep the user's adapters: delete only LCM's layers, the fused weights stay
            self.delete_adapters("lcm")
            for layer in self.unet.modules():  # LCM is part of the base weights now, no longer a merged adapter:
                if "lcm" in getattr(layer, "merged_adapters", ()):  # a layer that believes an adapter is merged
                    layer.merged_adapters.remove("lcm")  # skips every other adapter (peft), and unfuse_lora()
            self._merged_adapters = self._merged_adapters - {"lcm"}  # must not try to take it out again
            _restore_lora_state(self, before)
        return self.use_lcm_scheduler()

    # ------------------------------------------------------------------ text-made identities
    @torch.no_grad()
    def generate_reference(self, prompt: str, height: int = 512, width: int = 512, num_inference_steps: int | None = None,
                           guidance_scale: float | None = None, negative_prompt: str | None = None,
                           generator: torch.Generator | None = None) -> PIL.Image.Image:
        """A person made from text: the main UNet renders one frame from ``prompt`` (text-to-image; no reference,
        no pose, its motion modules over a single frame), with the pipeline's scheduler and mode. Deterministic
        with ``generator``. ``pipe(prompt=..., pose_images=...)`` does this when no reference is set."""
        if self.image_conditioned:
            raise ValueError("this model is conditioned on a reference image (it has an image_encoder) and has no "
                             "text encoder: it cannot make a person from text; pass reference_image=.")
        if not prompt or not isinstance(prompt, str):
            raise ValueError("generate_reference needs a prompt describing the person, e.g. 'a dancer in a red dress'.")
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be divisible by {self.vae_scale_factor}; got {height}x{width}.")
        defaults = MODE_DEFAULTS[self.mode or "fast"]
        steps = num_inference_steps or defaults["num_inference_steps"]
        guidance = defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        device, dtype = self._execution_device, self.unet.dtype
        text = self.encode_prompt(prompt, device).to(dtype)
        cfg = guidance > 1 and self.unet.config.time_cond_proj_dim is None
        negative = negative_prompt or defaults["negative_prompt"] or ""
        if cfg:
            text = torch.cat([self.encode_prompt(negative, device).to(dtype), text])
        added = None  # SDXL: the pooled text and the size time ids, one row per row of text
        if self.text_time_conditioned:
            pooled = [self.encode_pooled_prompt(p, device).to(dtype) for p in ([negative] if cfg else []) + [prompt]]
            added = self.added_cond_kwargs(torch.cat(pooled), height, width)
        cond = self.guidance_embedding(guidance, device, dtype)
        shape = (1, self.unet.config.in_channels, 1, height // self.vae_scale_factor, width // self.vae_scale_factor)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype) * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(steps, device=device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = self.scheduler.scale_model_input(latents, t).repeat(text.shape[0], 1, 1, 1, 1)
            pred = self.unet(model_in, t, encoder_hidden_states=text, timestep_cond=cond, added_cond_kwargs=added,
                             cross_attention_kwargs={"reference": None}, return_dict=False)[0]
            if cfg:
                uncond, conditional = pred.chunk(2)
                pred = uncond + guidance * (conditional - uncond)
            latents = self.scheduler.step(pred, t, latents, generator=generator, return_dict=False)[0]
        frame = self.decode_latents(latents)[0, :, 0]  # (3, H, W) in [-1, 1]
        return self.video_processor.postprocess_video(frame[None, :, None], "pil")[0][0]

    # ------------------------------------------------------------------ single images
    @torch.no_grad()
    def transfer_image(self, pose_image, reference_image=None, skip_motion_modules: bool = True, **kwargs):
        """One pose -> one image of the person (the single-image pose-transfer task): ``pipe(...)`` over one frame,
        with the motion modules bypassed (``skip_motion_modules``: they have nothing to relate across one frame,
        and skipping them saves their time). Other arguments as :meth:`__call__`; returns a PIL image (or what
        ``output_type`` asks for, without the frame axis)."""
        output_type = kwargs.pop("output_type", "pil")
        context = self.unet.motion_modules_bypassed() if skip_motion_modules else contextlib.nullcontext()
        with context:
            frames = self(reference_image=reference_image, pose_images=[pose_image], output_type=output_type,
                          **kwargs).frames
        return frames[0][0]

    # ------------------------------------------------------------------ fast / HQ modes
    def load_lcm_lora(self, repo_or_path: str | None = None, scale: float = 1.0, weight_name: str | None = None,
                      **kwargs) -> "TurboNextPipeline":
        """LCM-LoRA as a switchable adapter named "lcm" (not fused, unlike :meth:`fuse_lcm_lora`), so that
        ``mode="hq"`` can turn it off without reloading anything; switches to ``mode="fast"``. ``repo_or_path``
        defaults to the backbone's (lcm-lora-sdv1-5, or lcm-lora-sdxl for SDXL)."""
        repo_or_path, weight_name = _lora_file(repo_or_path or self._default_lcm_lora(), weight_name)
        self.load_lora_weights(repo_or_path, weight_name=weight_name, adapter_name="lcm", use_safetensors=True, **kwargs)
        self._lcm_lora_scale = float(scale)
        return self.set_mode("fast")

    @property
    def mode(self) -> str | None:
        """"fast" or "hq" once :meth:`set_mode` (or ``mode=``) chose one; None before."""
        return getattr(self, "_mode", None)

    def set_mode(self, mode: str, lcm_lora_scale: float | None = None, skip_scheduler: bool = False
                 ) -> "TurboNextPipeline":
        """Switch sampling without reloading: "fast" (LCM-LoRA on at ``lcm_lora_scale``, ``LCMScheduler``; 4-6
        steps, guidance 1-2) or "hq" (LCM-LoRA off, ``DPMSolverMultistepScheduler`` with Karras sigmas; 20-30
        steps, classifier-free guidance ~6 with a negative prompt). ``skip_scheduler``: keep the current
        scheduler (change only the LoRA; MimicMotion-Turbo's option). Style LoRAs keep their weights.

        "hq" needs LCM as a switchable adapter (:meth:`load_lcm_lora`) or no LCM at all: a model with LCM fused
        into its weights (:meth:`fuse_lcm_lora`, exported LCM models such as the demo) has no base weights left."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        adapters = set(self.get_list_adapters().get("unet", []))
        has_adapter = "lcm" in adapters
        if lcm_lora_scale is not None:
            self._lcm_lora_scale = float(lcm_lora_scale)
        scale = getattr(self, "_lcm_lora_scale", 1.0)
        fused = isinstance(self.scheduler, LCMScheduler) and not has_adapter and self.mode is None
        if mode == "hq" and (fused or getattr(self, "_lcm_fused", False)):
            raise ValueError("mode='hq' needs the model's weights without LCM, and this pipeline has LCM-LoRA fused "
                             "into them (its scheduler is LCMScheduler and there is no 'lcm' adapter to switch off). "
                             "Load LCM as an adapter instead: pipe.load_lcm_lora(...) on the base model, or "
                             "from_components(..., lcm_lora=None) then load_lcm_lora.")
        if mode == "fast" and not has_adapter and not isinstance(self.scheduler, LCMScheduler):
            raise ValueError("mode='fast' needs LCM-LoRA: pipe.load_lcm_lora() (switchable) or pipe.fuse_lcm_lora().")
        if has_adapter:
            names = list(self.style_loras) + ["lcm"]
            weights = list(self.style_loras.values()) + [scale if mode == "fast" else 0.0]
            self.set_adapters(names, weights)
        if not skip_scheduler:
            if mode == "fast":
                self.register_modules(scheduler=LCMScheduler.from_config(self.scheduler.config))
            else:
                self.register_modules(scheduler=DPMSolverMultistepScheduler.from_config(
                    self.scheduler.config, use_karras_sigmas=True))
        self._mode = mode
        return self

    def restore_sampling(self, scheduler, mode: str | None) -> "TurboNextPipeline":
        """Put back a ``scheduler`` and ``mode`` saved earlier (``pipe.scheduler``, ``pipe.mode``), e.g. after one
        render in another mode; a switchable LCM-LoRA gets that mode's weight back, style LoRAs keep theirs.
        ``mode=None``: no mode chosen (the model's own sampling, as loaded)."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, got {mode!r}.")
        if mode is not None and "lcm" in self.get_list_adapters().get("unet", []):
            self.set_mode(mode, skip_scheduler=True)
        self.register_modules(scheduler=scheduler)
        self._mode = mode
        return self

    # ------------------------------------------------------------------ joining clips
    @torch.no_grad()
    def join_clips(self, latent_clips: list[torch.Tensor], transition_frames: int = 8, mode: str = "slerp",
                   output_type: str = "pil", decode_chunk_size: int = 16):
        """Clips rendered with ``output_type="latent"`` -> one video, with ``transition_frames`` frames interpolated
        in latent space at every join (``mode`` "slerp" or "linear", see :mod:`turbonext.pipelines.transitions`).
        Returns frames batched as :meth:`__call__` does (``[0]`` is the video)."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        latents = join_latent_clips(list(latent_clips), transition_frames, mode)
        if output_type == "latent":
            return latents
        return self.video_processor.postprocess_video(self.decode_latents(latents, decode_chunk_size), output_type)

    # ------------------------------------------------------------------ style LoRAs
    @property
    def style_loras(self) -> dict[str, float]:
        """The style LoRAs loaded with :meth:`load_style_lora`: adapter name -> weight, in loading order."""
        return dict(getattr(self, "_style_loras", {}))

    def load_style_lora(self, path_or_repo: str, weight: float = 0.8, name: str | None = None,
                        weight_name: str | None = None, **kwargs) -> "TurboNextPipeline":
        """Stack an SD1.5 style LoRA (diffusers/peft or kohya keys; a folder, a Hub repo or a .safetensors file)
        on the main UNet at ``weight``, with LCM-LoRA (fused into the weights) left as it is. Up to
        :data:`MAX_STYLE_LORAS` at once; the cached reference K/V follow the new weights by themselves."""
        styles = self.style_loras
        if len(styles) >= MAX_STYLE_LORAS:
            raise ValueError(f"at most {MAX_STYLE_LORAS} style LoRAs can be stacked ({', '.join(styles)} are loaded): "
                             "unload_style_loras() first.")
        name = name or next(f"style{i}" for i in range(1, MAX_STYLE_LORAS + 2) if f"style{i}" not in styles)
        if name in styles or name == "lcm":
            raise ValueError(f"a LoRA named {name!r} is already loaded; pass another name=.")
        path_or_repo, weight_name = _lora_file(path_or_repo, weight_name, only_one=True)
        self.load_lora_weights(path_or_repo, weight_name=weight_name, adapter_name=name, use_safetensors=True, **kwargs)
        styles[name] = float(weight)
        self._style_loras = styles
        names, weights = list(styles), list(styles.values())
        if "lcm" in self.get_list_adapters().get("unet", []):  # a switchable LCM keeps its mode's weight
            names.append("lcm")
            weights.append(getattr(self, "_lcm_lora_scale", 1.0) if self.mode != "hq" else 0.0)
        self.set_adapters(names, weights)
        return self

    def unload_style_loras(self, names: Iterable[str] | None = None) -> "TurboNextPipeline":
        """Remove the style LoRAs ``names`` (default: every one); the others keep their weights and LCM-LoRA (fused,
        or a switchable adapter at its mode's weight) stays. A name of an adapter that is present but was never
        recorded (a load that failed half way) is removed too; an unknown name is ignored."""
        styles = self.style_loras
        names = list(styles) if names is None else list(names)
        present = {name for adapters in self.get_list_adapters().values() for name in adapters}
        gone = [name for name in names if name in present and name != "lcm"]
        if gone:
            self.delete_adapters(gone)
        self._style_loras = {name: weight for name, weight in styles.items() if name not in names}
        if not any(self.get_list_adapters().values()):
            if gone:
                self.unload_lora_weights()  # no adapter left: drop the empty LoRA layers too
            return self
        kept, weights = list(self._style_loras), list(self._style_loras.values())
        if "lcm" in self.get_list_adapters().get("unet", []):
            kept.append("lcm")
            weights.append(getattr(self, "_lcm_lora_scale", 1.0) if self.mode != "hq" else 0.0)
        if gone and kept:
            self.set_adapters(kept, weights)
        return self

    def _default_lcm_lora(self) -> str:
        return DEFAULT_SDXL_LCM_LORA if self.text_time_conditioned else DEFAULT_LCM_LORA

    def use_lcm_scheduler(self) -> "TurboNextPipeline":
        """Switch to an ``LCMScheduler`` built from the current scheduler's config (few-step sampling)."""
        self.register_modules(scheduler=LCMScheduler.from_config(self.scheduler.config))
        return self

    # ------------------------------------------------------------------ encoders
    @property
    def text_time_conditioned(self) -> bool:
        """Whether the UNets take SDXL's added conditioning (``addition_embed_type="text_time"``): the pooled text
        and the size/crop time ids (:mod:`turbonext.pipelines.sdxl_conditioning`)."""
        return self.unet.config.get("addition_embed_type") == "text_time"

    @torch.no_grad()
    def encode_prompt(self, prompt: str, device: torch.device) -> torch.Tensor:
        """Prompt -> CLIP hidden states (1, 77, D); cached per prompt, device, dtype and text-encoder weights.
        SDXL: both encoders' penultimate hidden states side by side (1, 77, 768 + 1280), as diffusers' SDXL."""
        return self._encoded_prompt(prompt, device)[0]

    @torch.no_grad()
    def encode_pooled_prompt(self, prompt: str, device: torch.device) -> torch.Tensor:
        """SDXL: prompt -> ``text_encoder_2``'s pooled, projected embedding (1, P), the UNets' ``text_embeds``."""
        if not self.text_time_conditioned:
            raise ValueError("pooled prompt embeddings are SDXL's added conditioning; this pipeline's UNet has none.")
        return self._encoded_prompt(prompt, device)[1]

    def _encoded_prompt(self, prompt: str, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        encoders = (self.text_encoder, getattr(self, "text_encoder_2", None))
        key = (prompt, str(device), self.text_encoder.dtype, weights_fingerprint(*encoders))
        if key not in self._prompt_cache:
            if encoders[1] is not None:
                value = encode_sdxl_prompt(self, prompt, device)
            else:
                ids = self.tokenizer(
                    prompt, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
                    return_tensors="pt",
                ).input_ids.to(device)
                value = (self.text_encoder(ids)[0], None)
            self._prompt_cache = {key: value}  # one entry: a new prompt replaces the old
        return self._prompt_cache[key]

    def _pooled_embeds(self, prompt: str | None, pooled_prompt_embeds: torch.Tensor | None, device) -> torch.Tensor:
        """SDXL: (1, P) pooled text from ``pooled_prompt_embeds`` or ``prompt`` ("" when both are None)."""
        if pooled_prompt_embeds is not None:
            return pooled_prompt_embeds.to(device)
        return self.encode_pooled_prompt(prompt or "", device)

    def added_cond_kwargs(self, text_embeds: torch.Tensor, height: int, width: int, original_size=None,
                          crops_coords_top_left=(0, 0), target_size=None) -> dict | None:
        """SDXL's ``added_cond_kwargs`` for UNet calls rendering ``height`` x ``width`` pixels: ``text_embeds`` (R, P)
        as given and ``time_ids`` (R, 6) (original size, crop top-left, target size; sizes default to the output
        size); None for UNets without added conditioning."""
        if not self.text_time_conditioned:
            return None
        time_ids = add_time_ids(self, height, width, original_size, crops_coords_top_left, target_size,
                                dtype=text_embeds.dtype, projection_dim=int(text_embeds.shape[-1]))
        return {"text_embeds": text_embeds, "time_ids": time_ids.to(text_embeds.device).repeat(text_embeds.shape[0], 1)}

    def _prompt_embeds(self, prompt: str | None, prompt_embeds: torch.Tensor | None, device) -> torch.Tensor:
        """(1, 77, D) text conditioning from ``prompt_embeds`` or ``prompt`` ("" when both are None)."""
        if prompt_embeds is not None:
            return prompt_embeds.to(device)
        if self.text_encoder is None:
            raise ValueError("this pipeline has no text encoder: it is conditioned on the reference image "
                             "(image_encoder); prompts are not used.")
        return self.encode_prompt(prompt or "", device)

    @property
    def image_conditioned(self) -> bool:
        """Whether the cross-attention context is the reference image's CLIP embedding (an ``image_encoder``)."""
        return getattr(self, "image_encoder", None) is not None

    @torch.no_grad()
    def encode_reference_image(self, image: torch.Tensor, device) -> torch.Tensor:
        """The reference (3, H, W) in [0, 1] -> its projected CLIP image embedding as context, (1, 1, D).

        The image goes through ``feature_extractor`` as an 8-bit picture, as the AnimateAnyone family feeds
        its PIL reference (resize to 224 on the short side, centre crop, CLIP normalisation)."""
        pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        inputs = self.feature_extractor(images=pixels, return_tensors="pt").pixel_values
        embeds = self.image_encoder(inputs.to(device, self.image_encoder.dtype)).image_embeds  # (1, D)
        return embeds.unsqueeze(1)  # (1, 1, D)

    def _context(self, ref: torch.Tensor, prompt: str | None, prompt_embeds: torch.Tensor | None, device) -> torch.Tensor:
        """The cross-attention context for reference ``ref``: its image embedding (image-conditioned models)
        or the text (others)."""
        if self.image_conditioned:
            return self.encode_reference_image(ref, device)
        return self._prompt_embeds(prompt, prompt_embeds, device)

    def guidance_embedding(self, guidance_scale: float, device, dtype) -> torch.Tensor | None:
        """``timestep_cond`` (1, D) for UNets with a guidance-scale embedding (``time_cond_proj_dim``; None for
        others): the sinusoidal embedding of ``w * 1000`` (LCM distillation's), ``w = guidance_scale - 1`` when
        ``guidance_scale > 1`` (diffusers' LCM convention), else ``embedded_guidance_scale`` from the config."""
        dim = self.unet.config.time_cond_proj_dim
        if dim is None:
            return None
        w = guidance_scale - 1 if guidance_scale > 1 else (self.config.embedded_guidance_scale or 0.0)
        return guidance_scale_embedding(torch.tensor([float(w)]), dim).to(device, dtype)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> scaled latents (N, 4, H/8, W/8), with the encoder VAE's own scaling."""
        vae = self.encoder_vae if self.encoder_vae is not None else self.vae
        with _upcast(vae) as dtype:  # SDXL's VAE overflows in fp16 (force_upcast): it encodes in fp32
            x = images.to(self._execution_device, dtype) * 2 - 1
            if isinstance(vae, AutoencoderTiny):
                latents = vae.encode(x).latents
            else:
                latents = vae.encode(x).latent_dist.mode()
        return latents * vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int = 16) -> torch.Tensor:
        """Latents (B, 4, F, h, w) -> video (B, 3, F, H, W) in [-1, 1], decoded ``decode_chunk_size`` frames at a time."""
        batch, _, num_frames, h, w = latents.shape
        frames = latents.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, h, w)  # (B*F, 4, h, w)
        with _upcast(self.vae) as dtype:  # SDXL's VAE decodes in fp32 (force_upcast); TAESD(XL) as it is
            out = [self.vae.decode(chunk.to(dtype) / self.vae.config.scaling_factor).sample.float()
                   for chunk in frames.split(decode_chunk_size)]
        video = torch.cat(out).clamp(-1, 1)  # (B*F, 3, H, W)
        return video.reshape(batch, num_frames, *video.shape[1:]).permute(0, 2, 1, 3, 4)

    # ------------------------------------------------------------------ reference
    @property
    def reads_reference_pose(self) -> bool:
        """Whether this model needs ``reference_pose`` with every new reference image."""
        return self.pose_guider.reads_reference_pose

    def _reference_pose_tensor(self, reference_pose, size: tuple[int, int]) -> torch.Tensor | None:
        """The reference's pose map as (3, H, W) in [0, 1] at ``size``; None when the model does not read it."""
        if not self.reads_reference_pose:
            if reference_pose is not None:
                logger.warning("reference_pose is ignored: this model's pose guider has no reference branch.")
            return None
        if reference_pose is None:
            raise ValueError(REFERENCE_POSE_REQUIRED)
        pose = image_to_tensor(reference_pose, "reference_pose")  # (3, H, W)
        return resize_keeping_aspect(pose, *size, mode="bilinear")  # as the reference image: padded, never stretched

    def reference_fingerprint(self) -> str:
        """A digest of every weight that shapes the reference tokens (ReferenceNet, the encoding VAE, the
        text encoder, the pose guider's reference branch): a changed weight or LoRA changes it."""
        vae = self.encoder_vae if self.encoder_vae is not None else self.vae
        guider = self.pose_guider if self.reads_reference_pose else None
        return weights_fingerprint(self.reference_unet, vae, self.text_encoder, guider, getattr(self, "image_encoder", None),
                                   getattr(self, "text_encoder_2", None))

    @staticmethod
    def _reference_key(image: torch.Tensor, prompt: str | None, prompt_embeds: torch.Tensor | None,
                       pose: torch.Tensor | None, weights: str, sdxl: dict | None = None) -> str:
        """The image, its pose, the text (the prompt, or the given embeddings), SDXL's added conditioning and the
        weights' fingerprint (which covers the text encoders): equal keys give equal tokens."""
        digest = hashlib.sha1(image.float().cpu().numpy().tobytes())
        digest.update(repr((tuple(image.shape), prompt or "")).encode())
        if prompt_embeds is not None:
            digest.update(b"embeds:" + prompt_embeds.float().cpu().numpy().tobytes())
        if pose is not None:
            digest.update(b"pose:" + pose.float().cpu().numpy().tobytes())
        if sdxl is not None:
            pooled = sdxl["pooled_prompt_embeds"]
            digest.update(repr([(k, v) for k, v in sorted(sdxl.items()) if k != "pooled_prompt_embeds"]).encode())
            if pooled is not None:
                digest.update(b"pooled:" + pooled.float().cpu().numpy().tobytes())
        digest.update(weights.encode())
        return digest.hexdigest()

    @torch.no_grad()
    def set_reference(self, image, prompt: str = "", height: int | None = None, width: int | None = None,
                      feature_cache=None, reference_pose=None, prompt_embeds: torch.Tensor | None = None, *,
                      pooled_prompt_embeds: torch.Tensor | None = None, original_size=None,
                      crops_coords_top_left=(0, 0), target_size=None) -> ReferenceCache:
        """Run ReferenceNet ONCE on ``image`` and keep its tokens (and K/V projections) for every frame.

        Setting the same image (and prompt) again reuses the cache without another ReferenceNet pass, unless
        a weight that shapes the tokens changed since (a LoRA loaded or fused, training). The K/V are
        recomputed whenever the main UNet's projections change. ``height``/``width``: resize the reference
        to the output size first (defaults to its own size); a reference of another aspect ratio is padded
        black to it, never stretched (``turbonext.jobs.prepare_reference`` crops around the person instead). ``feature_cache``: a
        :class:`turbonext.utils.feature_cache.FeatureCache`; the tokens are then saved to (and later loaded
        from) disk, keyed by the image, prompt, size, weights and dtype. Returns the cache, which becomes
        this pipeline's current reference (:attr:`reference_state`). SDXL: the ReferenceNet also gets the added
        conditioning, ``pooled_prompt_embeds`` (else the prompt's) and the time ids of ``original_size``,
        ``crops_coords_top_left`` and ``target_size`` (the sizes default to the reference's, i.e. the output size).
        """
        ref = image_to_tensor(image, "reference_image")  # (3, H, W)
        if height is not None and width is not None:
            ref = resize_keeping_aspect(ref, height, width)  # another shape is padded black, never stretched
        if ref.shape[1] % self.vae_scale_factor or ref.shape[2] % self.vae_scale_factor:
            raise ValueError(f"reference_image size {tuple(ref.shape[1:])} (H, W) must be divisible by "
                             f"{self.vae_scale_factor}.")
        ref_pose = self._reference_pose_tensor(reference_pose, tuple(ref.shape[1:]))  # (3, H, W) or None
        sdxl = None
        if self.text_time_conditioned:
            size = tuple(ref.shape[1:])
            sdxl = dict(pooled_prompt_embeds=pooled_prompt_embeds, original_size=tuple(original_size or size),
                        crops_coords_top_left=tuple(crops_coords_top_left), target_size=tuple(target_size or size))
        elif pooled_prompt_embeds is not None or original_size is not None or target_size is not None:
            raise ValueError("pooled_prompt_embeds, original_size and target_size are SDXL's added conditioning; this "
                             "pipeline's UNets have none.")
        return self._up_to_date(self.reference_state.cache, (ref, ref_pose, prompt, prompt_embeds, sdxl), feature_cache)

    def _up_to_date(self, cache: ReferenceCache | None, inputs: tuple, feature_cache=None) -> ReferenceCache:
        """``cache`` if it was made from ``inputs`` (image, pose, prompt, prompt embeddings) with the current
        weights, else a new ReferenceNet pass; its K/V refreshed; it becomes the pipeline's current reference."""
        ref, ref_pose, prompt, prompt_embeds, sdxl = inputs
        device = self._execution_device
        weights = self.reference_fingerprint()
        key = self._reference_key(ref, prompt, prompt_embeds, ref_pose, weights, sdxl)
        if cache is None or cache.key != key:
            text = self._context(ref, prompt, prompt_embeds, device)  # (1, 77, D) text, or (1, 1, D) image
            added = None
            if sdxl is not None:  # SDXL: the pooled text and the reference's size/crop time ids
                pooled = self._pooled_embeds(prompt, sdxl["pooled_prompt_embeds"], device).to(self.reference_unet.dtype)
                added = self.added_cond_kwargs(pooled, *ref.shape[1:], sdxl["original_size"],
                                               sdxl["crops_coords_top_left"], sdxl["target_size"])
            cache = self._run_reference(ref, text, ref_pose, key, weights, feature_cache, device, added)
        cache.inputs = inputs  # to redo it when the weights change
        cache.refresh_kv(self.unet, device)
        self.reference_state.cache = cache
        return cache

    def _run_reference(self, ref, text, ref_pose, key, weights, feature_cache, device,
                       added_cond_kwargs: dict | None = None) -> ReferenceCache:
        dtype = self.reference_unet.dtype
        disk_key = None
        if feature_cache is not None:
            disk_key = feature_cache.key("reference-net", key, model_revision=weights[:16], dtype=str(dtype))
            tokens = feature_cache.load_tensors(disk_key, device=str(device))
            if tokens is not None:
                return ReferenceCache.from_state_dict(tokens, key=key)
        latents = self.encode_images(ref[None]).to(dtype)  # (1, 4, h, w)
        pose_features = None
        if ref_pose is not None:
            pose_features = self.pose_guider.encode_reference(ref_pose[None].to(device, self.pose_guider.dtype))
        cache = run_reference_net(self.reference_unet, latents, text.to(dtype), pose_features, added_cond_kwargs)
        cache.key = key
        if self.image_conditioned:
            cache.context = text  # every denoiser call's context comes from this reference
        if disk_key is not None:
            feature_cache.save_tensors(disk_key, cache.state_dict())
        return cache

    def current_reference(self) -> ReferenceCache:
        """The current reference, brought up to date: the ReferenceNet runs again if the weights that shape
        its tokens changed since it was set, and the K/V are recomputed if the main UNet's did. Raises
        :class:`NoReferenceError` if none is set."""
        cache = self.reference_state.cache
        if cache is None:
            raise NoReferenceError()
        if cache.inputs is None:  # loaded from tokens alone: nothing to make it again from
            cache.refresh_kv(self.unet, self._execution_device)
            return cache
        return self._up_to_date(cache, cache.inputs)

    def clear_reference(self) -> None:
        self.reference_state.cache = None

    # ------------------------------------------------------------------ streaming
    def stream(self, reference_image=None, prompt: str = "", num_inference_steps: int = 4, window: int = 16,
               frames_per_level: int | None = None, generator: torch.Generator | None = None,
               compile: str | None = None, output_type: str = "pil", height: int | None = None,
               width: int | None = None, reference_pose=None, schedule: str | None = None,
               guidance_scale: float = 1.0) -> StreamSession:
        """A :class:`~turbonext.streaming.StreamSession` for live pose transfer (pipelined denoising).

        ``reference_image`` sets (or, if unchanged, reuses) the reference; ``None`` keeps the current one.
        The session keeps that reference for itself: a later ``set_reference`` on the pipeline (another
        user's photo) does not change what it renders. ``frames_per_level``: the frames that enter
        and leave the window together (default: ``window // 2`` in the uniform layout, ``window //
        num_inference_steps`` in the staggered one); fewer: lower latency, more UNet work per frame. ``compile``: a torch.compile mode such as "reduce-overhead" (CUDA graphs) or
        "max-autotune". ``height``/``width``: the pose frames' size, to which the reference is resized (as
        in :meth:`__call__`). ``reference_pose``: the reference's pose map, for models that read it (see
        :meth:`set_reference`). ``schedule``: the window layout, "uniform" (every frame being denoised at one
        noise level, the latest outputs as context; right for any model) or "staggered" (frames at stepped
        levels, one UNet call per ``frames_per_level`` frames; only for models trained on that layout);
        default: the UNet's ``config.stream_schedule``. ``guidance_scale``: > 1 applies classifier-free guidance
        at every UNet call (twice the work; what Moore-AnimateAnyone and MusePose were sampled with, 3.5); for
        UNets with a guidance-scale embedding (RAIN) it sets the embedded ``w = guidance_scale - 1`` instead
        (default: the config's). See :mod:`turbonext.streaming.session`. SDXL: every UNet call gets the added
        conditioning of the session's prompt and the frames' size (the session makes it once).
        """
        if reference_image is not None:
            self.set_reference(reference_image, prompt=prompt, height=height, width=width, reference_pose=reference_pose)
        return StreamSession(self, reference=self.current_reference(), prompt=prompt,
                             num_inference_steps=num_inference_steps, window=window,
                             frames_per_level=frames_per_level, generator=generator, compile=compile,
                             output_type=output_type, schedule=schedule, guidance_scale=guidance_scale)

    # ------------------------------------------------------------------ checks
    def check_inputs(self, reference_image, pose_images, prompt, negative_prompt, prompt_embeds,
                     negative_prompt_embeds, num_inference_steps, guidance_scale, output_type, window_size,
                     window_overlap, callback_on_step_end_tensor_inputs, reference_pose=None, long_video="blend",
                     chain_context=None, max_frames=MAX_FRAMES) -> None:
        """Validate the inputs of :meth:`__call__`; raises a ``ValueError`` that says what is accepted."""
        if pose_images is None:
            raise ValueError("pose_images is required: a list of pose images (one per output frame).")
        num_frames, height, width = check_images(pose_images, "pose_images")
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"pose image size {height}x{width} (H x W) must be divisible by {self.vae_scale_factor}, "
                             "e.g. 512x512.")
        if reference_image is None:
            if self.reference_state.cache is None and not (prompt and not self.image_conditioned):
                raise NoReferenceError() if self.image_conditioned else NoReferenceError(
                    "pass reference_image=..., call pipe.set_reference(image) first, or give a prompt to generate "
                    "the person from text.")
        else:
            check_image(reference_image, "reference_image")
            if reference_pose is None and self.reads_reference_pose:
                raise ValueError(REFERENCE_POSE_REQUIRED)
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("pass prompt or prompt_embeds, not both.")
        if self.image_conditioned and any(v is not None for v in (prompt, negative_prompt, prompt_embeds,
                                                                  negative_prompt_embeds)):
            raise ValueError("this model is conditioned on the reference image (it has an image_encoder): prompts "
                             "and prompt embeddings are not used; pass only the reference image and poses.")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("pass negative_prompt or negative_prompt_embeds, not both.")
        for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string (one video per call), got {type(value).__name__}.")
        for name, value in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if value is not None and (value.ndim != 3 or value.shape[0] != 1):
                raise ValueError(f"{name} must have shape (1, sequence, dim), got {tuple(value.shape)}.")
        if prompt_embeds is not None and negative_prompt_embeds is not None and (
                prompt_embeds.shape != negative_prompt_embeds.shape):
            raise ValueError(f"prompt_embeds {tuple(prompt_embeds.shape)} and negative_prompt_embeds "
                             f"{tuple(negative_prompt_embeds.shape)} must have the same shape.")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}.")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) or not guidance_scale >= 0:
            raise ValueError(f"guidance_scale must be a number >= 0, got {guidance_scale!r}.")
        for name, value in (("window_size", window_size), ("window_overlap", window_overlap)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        context_windows(num_frames, window_size, window_overlap)  # raises on a bad window/overlap
        if long_video not in LONG_VIDEO_MODES:
            raise ValueError(f"long_video must be one of {LONG_VIDEO_MODES}, got {long_video!r}.")
        if chain_context is not None and chain_context not in CHAIN_CONTEXTS:
            raise ValueError(f"chain_context must be one of {CHAIN_CONTEXTS} (or None: the model's own), "
                             f"got {chain_context!r}.")
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 1):
            raise ValueError(f"max_frames must be an integer >= 1 (or None: no limit), got {max_frames!r}.")
        if max_frames is not None and num_frames > max_frames:
            gigabytes = num_frames * height * width * 3 * 4 / 1e9  # the decoded frames, float32
            raise ValueError(
                f"pose_images has {num_frames} frames, more than max_frames={max_frames}: the whole decoded video is "
                f"held in memory (about {gigabytes:.1f} GB of float frames at {height}x{width}). Pass "
                f"max_frames={num_frames} (or max_frames=None, no limit) to render it anyway; long_video='chain' keeps "
                "the denoiser's memory constant at any length. Or render it in parts with output_type='latent' and "
                "join them with pipe.join_clips.")
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs {bad} not in {self._callback_tensor_inputs}.")

    def _check_sdxl_inputs(self, prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
                           negative_pooled_prompt_embeds, original_size, crops_coords_top_left, target_size) -> None:
        """SDXL's extra inputs of :meth:`__call__`: pooled embeddings with their prompt embeddings, sizes as pixels;
        none of them for other backbones."""
        if not self.text_time_conditioned:
            given = [name for name, value in (("pooled_prompt_embeds", pooled_prompt_embeds),
                                              ("negative_pooled_prompt_embeds", negative_pooled_prompt_embeds),
                                              ("original_size", original_size), ("target_size", target_size))
                     if value is not None]
            if given or crops_coords_top_left is None or tuple(crops_coords_top_left) != (0, 0):
                raise ValueError(f"{given or ['crops_coords_top_left']} are SDXL's added conditioning; this pipeline's "
                                 "UNets have none (addition_embed_type is not 'text_time').")
            return
        for embeds, pooled, name in ((prompt_embeds, pooled_prompt_embeds, ""),
                                     (negative_prompt_embeds, negative_pooled_prompt_embeds, "negative_")):
            if (embeds is None) != (pooled is None):
                raise ValueError(f"SDXL needs {name}prompt_embeds and {name}pooled_prompt_embeds together (the pooled "
                                 "embedding is the UNets' added text_embeds); pass both or neither.")
            if pooled is not None and (not torch.is_tensor(pooled) or pooled.ndim != 2 or pooled.shape[0] != 1):
                raise ValueError(f"{name}pooled_prompt_embeds must be a tensor of shape (1, P), got "
                                 f"{tuple(pooled.shape) if torch.is_tensor(pooled) else type(pooled).__name__}.")
        for name, value in (("original_size", original_size), ("crops_coords_top_left", crops_coords_top_left or ()),
                            ("target_size", target_size)):
            check_size_conditioning(name, value)

    # ------------------------------------------------------------------ call state (diffusers' names)
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        # a UNet with a guidance-scale embedding (LCM-distilled) has the guidance built in: no second batch half
        return self._guidance_scale > 1.0 and self.unet.config.time_cond_proj_dim is None

    @property
    def cross_attention_kwargs(self) -> dict[str, Any] | None:
        return self._cross_attention_kwargs

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ------------------------------------------------------------------ long videos by chaining
    def _denoise_chained(self, predict, latents, num_inference_steps, window_size, window_overlap, chain_context,
                         generator, callback_on_step_end, callback_tensor_inputs, prompt_embeds,
                         negative_prompt_embeds) -> torch.Tensor:
        """``long_video="chain"``: :func:`~turbonext.pipelines.context_windows.denoise_chained` with this call's
        progress bar, callback (``latents``: the new frames of the window being denoised, step counted across
        windows) and interrupt. The context is "clean" for models trained on per-frame levels (the UNet's
        ``stream_schedule`` is "staggered") and "renoise" for the others, unless ``chain_context`` says."""
        if chain_context is None:
            staggered = getattr(self.unet.config, "stream_schedule", "uniform") == "staggered"
            chain_context = "clean" if staggered else "renoise"
        windows = len(chained_windows(latents.shape[2], window_size, window_overlap))
        with self.progress_bar(total=num_inference_steps * windows) as progress_bar:
            def on_step(i, t, window_latents):
                if callback_on_step_end is not None:
                    scope = {"latents": window_latents, "prompt_embeds": prompt_embeds,
                             "negative_prompt_embeds": negative_prompt_embeds}
                    outputs = callback_on_step_end(self, i, t, {k: scope[k] for k in callback_tensor_inputs})
                    window_latents = outputs.pop("latents", window_latents)
                progress_bar.update()
                return window_latents

            return denoise_chained(predict, self.scheduler, latents, num_inference_steps, window_size, window_overlap,
                                   chain_context, generator, on_step=on_step, should_stop=lambda: self.interrupt)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        reference_image=None,
        pose_images=None,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        window_size: int = 16,
        window_overlap: int = 4,
        long_video: str = "blend",
        chain_context: str | None = None,
        max_frames: int | None = MAX_FRAMES,
        decode_chunk_size: int = 16,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        reference_pose=None,
        mode: str | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        original_size: tuple[int, int] | None = None,
        crops_coords_top_left: tuple[int, int] = (0, 0),
        target_size: tuple[int, int] | None = None,
    ) -> TurboNextPipelineOutput | tuple:
        r"""Render the person of ``reference_image`` in every pose of ``pose_images``.

        Args:
            reference_image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`, *optional*):
                The person: a PIL image, an array (H, W, 3) (uint8, or float in [0, 1]) or a tensor (3, H, W) in
                [0, 1]. Resized to the pose size if needed. ``None`` uses the reference set by
                :meth:`set_reference` (or by an earlier call).
            pose_images (`list`, `np.ndarray` or `torch.Tensor`):
                Pose maps, one per output frame: a list of images, an array (F, H, W, 3) or a tensor
                (F, 3, H, W). Their size (divisible by 8) is the output size.
            prompt (`str`, *optional*):
                Text conditioning of the UNets (the models are trained with the empty prompt, the default).
            negative_prompt (`str`, *optional*):
                The unconditional prompt of classifier-free guidance (default empty).
            num_inference_steps (`int`, *optional*):
                Denoising steps (default 4; 25 in ``mode="hq"``).
            guidance_scale (`float`, *optional*, default 1.0; 6.0 in ``mode="hq"``):
                Classifier-free guidance (on the prompt, or on the reference image's embedding for image-conditioned
                models); values > 1 enable it. For UNets with a guidance-scale embedding (LCM-distilled, e.g.
                RAIN) there is no second pass: ``w = guidance_scale - 1`` is embedded instead (default: the
                config's ``embedded_guidance_scale``).
            generator (`torch.Generator`, *optional*):
                For deterministic noise.
            latents (`torch.Tensor`, *optional*):
                Initial noise (1, 4, F, H/8, W/8) instead of drawing it.
            prompt_embeds / negative_prompt_embeds (`torch.Tensor`, *optional*):
                Precomputed text embeddings (1, 77, D) instead of ``prompt`` / ``negative_prompt``.
            output_type (`str`, defaults to `"pil"`):
                "pil", "np", "pt" or "latent".
            return_dict (`bool`, defaults to `True`):
                Return a :class:`TurboNextPipelineOutput` instead of a tuple.
            cross_attention_kwargs (`dict`, *optional*):
                Passed to the UNet's attention processors (e.g. ``{"scale": 0.5}`` for LoRA); the reference
                rides along in it under ``"reference"``.
            window_size / window_overlap (`int`, defaults to 16 / 4):
                Clips longer than ``window_size`` frames are rendered in windows of ``window_size`` frames (the
                motion modules' span): with ``long_video="blend"`` they overlap by ``window_overlap`` frames; with
                ``"chain"`` each window starts with (at least) ``window_overlap`` finished frames as context.
            long_video (`str`, defaults to `"blend"`):
                How a clip longer than one window is rendered (:mod:`turbonext.pipelines.context_windows`):
                "blend": overlapping windows cover the whole clip at every step, their predictions averaged where
                they overlap. "chain": window after window, each new window denoising ``window_size -
                window_overlap`` new frames next to the last frames of the previous windows, finished, as context;
                the denoiser's memory is one window's whatever the length, and the context carries the picture
                across the joins (``callback_on_step_end`` then gets the latents of the window's new frames, with
                the step counted across windows).
            chain_context (`str`, *optional*):
                With ``long_video="chain"``, how the context frames are given to the model: "renoise" (noised
                afresh to each step's level: every frame in the window at one level, for models trained that
                way) or "clean" (clean, per-frame timestep 0, for models trained on per-frame levels). Default:
                "clean" if the UNet's ``config.stream_schedule`` is "staggered", else "renoise".
            max_frames (`int`, *optional*, defaults to 1024):
                The longest clip accepted: more pose frames raise a ``ValueError`` (the whole decoded video is
                held in memory). Raise it, or pass None for no limit, to render longer clips.
            decode_chunk_size (`int`, defaults to 16):
                Frames decoded at a time.
            callback_on_step_end (`Callable`, *optional*):
                ``fn(pipe, step, timestep, callback_kwargs) -> dict`` after each denoising step; it may return
                replacement tensors (e.g. ``{"latents": ...}``) and set ``pipe._interrupt = True`` to stop.
            callback_on_step_end_tensor_inputs (`list`, defaults to `["latents"]`):
                The tensors passed to it, from :attr:`_callback_tensor_inputs`.
            mode (`str`, *optional*):
                "fast" (LCM) or "hq" (DPM-Solver++ with Karras sigmas, LCM-LoRA switched off, CFG with a negative
                prompt), switched without reloading (see :meth:`set_mode`); its step count, guidance and negative
                prompt fill in whatever the call leaves unset.
            reference_pose (*optional*):
                The reference image's pose map, required with a new ``reference_image`` by models that read it
                (:attr:`reads_reference_pose`); ignored by the others.
            pooled_prompt_embeds / negative_pooled_prompt_embeds (`torch.Tensor`, *optional*):
                SDXL: the pooled text embeddings (1, P) that go with ``prompt_embeds`` / ``negative_prompt_embeds``.
            original_size / crops_coords_top_left / target_size (*optional*):
                SDXL's size and crop conditioning (pixels, (height, width) and (top, left)), passed as time ids to both
                UNets as in diffusers' SDXL pipelines; the sizes default to the output size, the crop to (0, 0).

        Examples:

        Returns:
            :class:`TurboNextPipelineOutput` with ``frames`` batched as in diffusers' video pipelines
            (``frames[0]`` is the clip), or a tuple ``(frames,)`` if ``return_dict`` is False.
        """
        # 0. argument types; mode: switches LoRA and scheduler (no reload) and fills in what the call leaves unset
        _check_call_types(latents, prompt_embeds, negative_prompt_embeds, generator, cross_attention_kwargs,
                          decode_chunk_size, guidance_scale)
        if mode is not None:
            self.set_mode(mode)
        defaults = dict(MODE_DEFAULTS.get(mode or self.mode or "fast"))
        if mode is None and self.mode is None:  # the model's own sampling, where its config names it
            for key in ("num_inference_steps", "guidance_scale"):
                if self.config.get(f"default_{key}") is not None:
                    defaults[key] = self.config[f"default_{key}"]
        if num_inference_steps is None:
            num_inference_steps = defaults["num_inference_steps"]
        if guidance_scale is None:
            guidance_scale = defaults["guidance_scale"]
        if negative_prompt is None and negative_prompt_embeds is None and guidance_scale > 1 and not self.image_conditioned:
            negative_prompt = defaults["negative_prompt"] if (mode or self.mode) == "hq" else None

        # 1. check inputs
        self.check_inputs(
            reference_image, pose_images, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds,
            num_inference_steps, guidance_scale, output_type, window_size, window_overlap,
            callback_on_step_end_tensor_inputs, reference_pose, long_video, chain_context, max_frames,
        )
        self._check_sdxl_inputs(prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds,
                                negative_pooled_prompt_embeds, original_size, crops_coords_top_left, target_size)
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = cross_attention_kwargs
        self._interrupt = False
        device, dtype = self._execution_device, self.unet.dtype

        # 2. pose frames (F, 3, H, W) in [0, 1] and their features, each pose through the guider once. (Not
        #    diffusers' VideoProcessor.preprocess_video: it passes uint8 arrays, e.g. webcam frames, through
        #    unscaled; images_to_tensor scales them and composites transparency on black, the training background.)
        poses = images_to_tensor(pose_images, "pose_images")
        num_frames, height, width = poses.shape[0], poses.shape[2], poses.shape[3]
        pose_features = self.pose_guider(poses.to(device, self.pose_guider.dtype)).to(dtype)  # (F, 320, h, w)

        # 3. reference (ReferenceNet runs only when the reference or its weights changed); with none set and a
        #    prompt, a text-made identity: the reference is generated first
        generated = None
        if reference_image is None and self.reference_state.cache is None:
            generated = reference_image = self.generate_reference(prompt, height=height, width=width,
                                                                  generator=generator)
        if reference_image is not None:
            reference = self.set_reference(reference_image, prompt=prompt or "", height=height, width=width,
                                           reference_pose=reference_pose, prompt_embeds=prompt_embeds,
                                           pooled_prompt_embeds=pooled_prompt_embeds, original_size=original_size,
                                           crops_coords_top_left=crops_coords_top_left, target_size=target_size)
        else:
            reference = self.current_reference()
        reference = reference if self.reference_state.enabled else None
        lora_scale = (cross_attention_kwargs or {}).get("scale")
        if reference is not None and lora_scale is not None and lora_scale != 1.0:
            # the reference K/V are projected outside the UNet's forward: give them this call's LoRA scale too,
            # in a copy for this call only (streams may be reading the shared cache)
            reference = ReferenceCache(tokens=reference.tokens, key=reference.key)
            scale_lora_layers(self.unet, lora_scale)
            try:
                reference.precompute_kv(self.unet, device)
            finally:
                unscale_lora_layers(self.unet, lora_scale)
        attention_kwargs = {**(cross_attention_kwargs or {}), "reference": reference}

        # 4. context: text (1, 77, D), or the reference's image embedding (1, 1, D) for image-conditioned models;
        #    with guidance [negative; positive] (2, L, D), the image models' negative being zeros
        if self.image_conditioned:
            prompt_embeds = self.reference_state.cache.context.to(device, dtype)
            negative_prompt_embeds = torch.zeros_like(prompt_embeds)
        else:
            prompt_embeds = self._prompt_embeds(prompt, prompt_embeds, device).to(dtype)
        if self.do_classifier_free_guidance:
            if not self.image_conditioned:
                negative_prompt_embeds = self._prompt_embeds(negative_prompt, negative_prompt_embeds, device).to(dtype)
            text = torch.cat([negative_prompt_embeds, prompt_embeds])
        else:
            text = prompt_embeds
        timestep_cond = self.guidance_embedding(guidance_scale, device, dtype)  # (1, D') or None
        added_cond = None  # SDXL: pooled text (rows, P) and size/crop time ids (rows, 6), rows as the context's
        if self.text_time_conditioned:
            pooled = self._pooled_embeds(prompt, pooled_prompt_embeds, device).to(dtype)
            if self.do_classifier_free_guidance:
                pooled = torch.cat([self._pooled_embeds(negative_prompt, negative_pooled_prompt_embeds, device).to(dtype),
                                    pooled])
            added_cond = self.added_cond_kwargs(pooled, height, width, original_size, crops_coords_top_left, target_size)

        # 5. timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)

        # 6. latents (1, 4, F, h, w)
        shape = (1, self.unet.config.in_channels, num_frames, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}.")
        latents = latents.to(device, dtype) * self.scheduler.init_noise_sigma

        # 7. denoising loop: "blend" covers the clip with overlapping windows at every step, blended; "chain"
        #    denoises window after window, each new one next to the previous windows' last frames as context
        rows = text.shape[0]

        def predict(model_in: torch.Tensor, t: torch.Tensor, window: range) -> torch.Tensor:
            """The guided noise prediction (1, C, count, h, w), float32, of one window: ``model_in`` (1, C, count, h,
            w) already scaled, ``t`` one timestep (0-d) or one per frame (1, count)."""
            frames, count = slice(window.start, window.stop), len(window)
            call_kwargs = attention_kwargs
            if rows == 2 and reference is not None and not self.config.reference_in_uncond:
                call_kwargs = {**attention_kwargs, "reference_skip_rows": count}  # the unconditional half
            pred = self.unet(
                model_in.repeat(rows, 1, 1, 1, 1), t if t.ndim == 0 else t.expand(rows, -1),
                encoder_hidden_states=text.repeat_interleave(count, dim=0),  # (rows*count, L, D)
                timestep_cond=None if timestep_cond is None else timestep_cond.expand(rows, -1),
                pose_features=pose_features[frames].repeat(rows, 1, 1, 1),
                cross_attention_kwargs=call_kwargs, added_cond_kwargs=added_cond,
                return_dict=False,
            )[0].float()
            if self.do_classifier_free_guidance:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            return pred

        if long_video == "chain":
            latents = self._denoise_chained(predict, latents, num_inference_steps, window_size, window_overlap,
                                            chain_context, generator, callback_on_step_end,
                                            callback_on_step_end_tensor_inputs, prompt_embeds, negative_prompt_embeds)
        else:
            windows = context_windows(num_frames, window_size, window_overlap)
            with self.progress_bar(total=len(timesteps)) as progress_bar:
                for i, t in enumerate(timesteps):
                    if self.interrupt:
                        continue
                    noise_pred = torch.zeros_like(latents, dtype=torch.float32)
                    weight_sum = torch.zeros((num_frames,), device=device)
                    for window in windows:
                        frames = slice(window.start, window.stop)
                        count = len(window)
                        pred = predict(self.scheduler.scale_model_input(latents[:, :, frames], t), t, window)
                        w = (window_weights(count, device=device) if len(windows) > 1
                             else torch.ones(count, device=device))
                        noise_pred[:, :, frames] += pred * w.view(1, 1, -1, 1, 1)
                        weight_sum[frames] += w
                    noise_pred = noise_pred / weight_sum.view(1, 1, -1, 1, 1)
                    latents = self.scheduler.step(noise_pred.to(dtype), t, latents, generator=generator,
                                                  return_dict=False)[0]
                    if callback_on_step_end is not None:
                        scope = locals()
                        callback_kwargs = {k: scope[k] for k in callback_on_step_end_tensor_inputs}
                        callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                        latents = callback_outputs.pop("latents", latents)
                    progress_bar.update()

        # 8. decode
        if output_type == "latent":
            video = latents
        else:
            video = self.video_processor.postprocess_video(self.decode_latents(latents, decode_chunk_size), output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return TurboNextPipelineOutput(frames=video, reference_image=generated)


@contextlib.contextmanager
def _upcast(vae):
    """Yields the dtype to run ``vae`` in: fp32 for a VAE with ``force_upcast`` held in fp16 (SDXL's overflows in
    fp16; diffusers' SDXL pipelines upcast it the same way), moved back afterwards; else its own dtype."""
    if not (vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)):
        yield vae.dtype
        return
    vae.to(dtype=torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(dtype=torch.float16)


def _lora_file(repo_or_path, weight_name: str | None, only_one: bool = False) -> tuple[str, str | None]:
    """(repo or folder, weight_name) for ``load_lora_weights``: a .safetensors file splits into its folder and name;
    a folder without ``weight_name`` gives its (first; with ``only_one``, its only) .safetensors file; a Hub repo id
    passes through."""
    path = Path(os.fspath(repo_or_path))
    if path.is_file():
        return str(path.parent), path.name
    if weight_name is None and path.is_dir():
        files = sorted(f.name for f in path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no .safetensors LoRA file in {path}")
        if only_one and len(files) != 1:
            raise ValueError(f"{path} holds {len(files)} .safetensors files; pass weight_name= (or the file itself).")
        return str(path), files[0]
    return os.fspath(repo_or_path), weight_name


def _check_call_types(latents, prompt_embeds, negative_prompt_embeds, generator, cross_attention_kwargs,
                      decode_chunk_size, guidance_scale=None) -> None:
    """The types of ``__call__``'s tensor, generator and option arguments, each with a sentence saying what is
    accepted (``check_inputs`` checks the values)."""
    for name, value in (("latents", latents), ("prompt_embeds", prompt_embeds),
                        ("negative_prompt_embeds", negative_prompt_embeds)):
        if value is not None and not torch.is_tensor(value):
            raise ValueError(f"{name} must be a torch tensor, got {type(value).__name__}.")
    generators = generator if isinstance(generator, list) else [generator]
    if not all(g is None or isinstance(g, torch.Generator) for g in generators):
        raise ValueError(f"generator must be a torch.Generator (or a list of them), got {type(generator).__name__}.")
    if cross_attention_kwargs is not None and not isinstance(cross_attention_kwargs, dict):
        raise ValueError(f"cross_attention_kwargs must be a dict, got {type(cross_attention_kwargs).__name__}.")
    if isinstance(decode_chunk_size, bool) or not isinstance(decode_chunk_size, int) or decode_chunk_size < 1:
        raise ValueError(f"decode_chunk_size must be an integer >= 1, got {decode_chunk_size!r}.")
    if guidance_scale is not None and (isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float))):
        raise ValueError(f"guidance_scale must be a number >= 0, got {guidance_scale!r}.")


def guidance_scale_embedding(w: torch.Tensor, embedding_dim: int) -> torch.Tensor:
    """(N,) guidance weights -> (N, embedding_dim): sin/cos features of ``w * 1000`` at geometric frequencies,
    the embedding LCM-distilled UNets were trained with (arXiv 2310.04378)."""
    w = w.float() * 1000.0
    half = embedding_dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    emb = w[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if embedding_dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


def _lora_state(model: torch.nn.Module) -> dict:
    """The LoRA adapters' activity and per-layer scales of ``model`` (peft layers), to restore them later."""
    scaling, active, disabled = {}, None, False
    for name, layer in model.named_modules():
        if hasattr(layer, "active_adapters") and hasattr(layer, "scaling"):
            scaling[name] = dict(layer.scaling)
            active = list(layer.active_adapters) if active is None else active
            disabled = disabled or bool(getattr(layer, "disable_adapters", False))
    return {"scaling": scaling, "active": active or [], "disabled": disabled}


def _restore_lora_state(pipe: TurboNextPipeline, state: dict) -> None:
    """Put back what :func:`_lora_state` recorded (loading another adapter makes it the only active one)."""
    remaining = set(pipe.get_list_adapters().get("unet", []))
    active = [name for name in state["active"] if name in remaining]
    if not active:
        return
    pipe.set_adapters(active)
    for name, layer in pipe.unet.named_modules():
        for adapter, value in state["scaling"].get(name, {}).items():
            if hasattr(layer, "scaling") and adapter in layer.scaling:
                layer.scaling[adapter] = value
    if state["disabled"]:
        pipe.disable_lora()
