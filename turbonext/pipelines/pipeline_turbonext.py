"""TurboNextPipeline: a reference image + a pose sequence -> a video of that person in those poses."""

from __future__ import annotations

import hashlib
import os
from typing import Callable

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DiffusionPipeline, LCMScheduler, UNet2DConditionModel
from diffusers import __version__ as diffusers_version
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.schedulers import SchedulerMixin
from diffusers.utils import logging
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from turbonext.loaders.assemble import assemble_pipeline
from turbonext.loaders.hub import DEFAULT_LCM_LORA, DEMO_MODEL_NAME, resolve_pretrained_path
from turbonext.loaders.publish import push_folder, write_card
from turbonext.models.pose_guider import PoseGuider
from turbonext.models.reference_attention import (
    ReferenceCache,
    ReferenceState,
    install_reference_processors,
    run_reference_net,
)
from turbonext.models.unet_motion import TurboNextUNetMotionModel
from turbonext.pipelines.context_windows import context_windows, window_weights
from turbonext.pipelines.pipeline_output import TurboNextPipelineOutput
from turbonext.streaming.session import StreamSession
from turbonext.utils.images import image_to_tensor, images_to_tensor, tensor_to_pil


logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
REFERENCE_POSE_REQUIRED = (
    "this model reads the reference image's pose (its pose guider has reference_features=True): pass "
    "reference_pose=<the reference image's pose map, rendered like the pose_images: COCO-17 limbs on black>. "
    "turbonext.jobs.reference.prepare_reference(image, detector, size).pose_map detects and renders it."
)
_PIPELINE_TAKES_DTYPE = tuple(int(v) for v in diffusers_version.split(".")[:2]) >= (0, 42)


class TurboNextPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    r"""Pose transfer with SD1.5 + AnimateDiff motion modules, a cached ReferenceNet and a pose guider.

    Components: ``vae`` decodes (TAESD ``AutoencoderTiny`` for speed, or an SD ``AutoencoderKL``);
    ``encoder_vae`` (optional ``AutoencoderKL``) encodes the reference instead of ``vae``;
    ``text_encoder``/``tokenizer`` (CLIP, frozen); ``unet`` (:class:`TurboNextUNetMotionModel`);
    ``reference_unet`` (ReferenceNet, an SD1.5 ``UNet2DConditionModel``); ``pose_guider``;
    ``scheduler`` (``LCMScheduler`` for 4-step inference).
    """

    model_cpu_offload_seq = "text_encoder->reference_unet->pose_guider->unet->vae"
    _optional_components = ["encoder_vae"]
    _callback_tensor_inputs = ["latents"]

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
    ):
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, reference_unet=reference_unet,
            pose_guider=pose_guider, scheduler=scheduler, encoder_vae=encoder_vae,
        )
        self.reference_state = ReferenceState()
        install_reference_processors(reference_unet, self.reference_state, "write")
        install_reference_processors(unet, self.reference_state, "read")
        self._prompt_cache: dict[tuple, torch.Tensor] = {}

    # ------------------------------------------------------------------ loading
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
        if getattr(self, "tokenizer", None) is not None:
            self.tokenizer.init_kwargs.pop("local_files_only", None)
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
        import tempfile

        with tempfile.TemporaryDirectory(prefix="turbonext-push-") as folder:
            return self.save_pretrained(folder, push_to_hub=True, repo_id=repo_id, private=private, token=token,
                                        commit_message=commit_message)

    def to(self, *args, **kwargs) -> "TurboNextPipeline":
        super().to(*args, **kwargs)
        cache = self.reference_state.cache
        if cache is not None:  # pipe.to() moves registered modules only: move the cache with them
            cache.tokens = {n: t.to(self.reference_unet.device, self.reference_unet.dtype) for n, t in cache.tokens.items()}
            cache.precompute_kv(self.unet)
        return self

    # ------------------------------------------------------------------ LCM
    def fuse_lcm_lora(self, repo_or_path: str = DEFAULT_LCM_LORA, scale: float = 1.0, weight_name: str | None = None,
                      **kwargs) -> "TurboNextPipeline":
        """Load LCM-LoRA (peft or kohya keys), fuse it into the main UNet and switch to ``LCMScheduler``."""
        if weight_name is None and os.path.isdir(repo_or_path):
            files = sorted(f for f in os.listdir(repo_or_path) if f.endswith(".safetensors"))
            if not files:
                raise FileNotFoundError(f"no .safetensors LoRA file in {repo_or_path}")
            weight_name = files[0]
        self.load_lora_weights(repo_or_path, weight_name=weight_name, adapter_name="lcm", use_safetensors=True, **kwargs)
        self.fuse_lora(components=["unet"], lora_scale=scale, adapter_names=["lcm"])
        self.unload_lora_weights()  # drops the LoRA layers, keeps the fused weights
        self.use_lcm_scheduler()
        if self.reference_state.cache is not None:  # K/V projections changed with the weights
            self.reference_state.cache.precompute_kv(self.unet)
        return self

    def use_lcm_scheduler(self) -> "TurboNextPipeline":
        """Switch to an ``LCMScheduler`` built from the current scheduler's config (few-step sampling)."""
        self.register_modules(scheduler=LCMScheduler.from_config(self.scheduler.config))
        return self

    # ------------------------------------------------------------------ encoders
    @property
    def vae_scale_factor(self) -> int:
        return 8

    @torch.no_grad()
    def encode_prompt(self, prompt: str, device: torch.device) -> torch.Tensor:
        """Prompt -> CLIP hidden states (1, 77, D); cached per prompt, device and dtype."""
        key = (prompt, str(device), self.text_encoder.dtype)
        if key not in self._prompt_cache:
            ids = self.tokenizer(
                prompt, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
                return_tensors="pt",
            ).input_ids.to(device)
            self._prompt_cache[key] = self.text_encoder(ids)[0]
        return self._prompt_cache[key]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> scaled latents (N, 4, H/8, W/8), with the encoder VAE's own scaling."""
        vae = self.encoder_vae if self.encoder_vae is not None else self.vae
        x = images.to(vae.device, vae.dtype) * 2 - 1
        if isinstance(vae, AutoencoderTiny):
            latents = vae.encode(x).latents
        else:
            latents = vae.encode(x).latent_dist.mode()
        return latents * vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
        """Latents (1, 4, F, h, w) -> frames (F, 3, H, W) in [0, 1], decoded ``chunk_size`` at a time."""
        frames = latents[0].permute(1, 0, 2, 3)  # (F, 4, h, w)
        out = []
        for chunk in frames.split(chunk_size):
            decoded = self.vae.decode(chunk.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
            out.append((decoded.float() / 2 + 0.5).clamp(0, 1))
        return torch.cat(out)

    # ------------------------------------------------------------------ reference
    @staticmethod
    def _reference_key(image: torch.Tensor, prompt: str, pose: torch.Tensor | None = None) -> str:
        digest = hashlib.sha1(image.float().cpu().numpy().tobytes())
        digest.update(repr((tuple(image.shape), prompt)).encode())
        if pose is not None:
            digest.update(b"pose:" + pose.float().cpu().numpy().tobytes())
        return digest.hexdigest()

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
        if tuple(pose.shape[1:]) != tuple(size):
            pose = torch.nn.functional.interpolate(pose[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
        return pose

    def model_revision(self) -> str:
        """A fingerprint of the weights that shape the reference tokens (ReferenceNet, encoder, text encoder)."""
        digest = hashlib.sha1()
        vae = self.encoder_vae if self.encoder_vae is not None else self.vae
        modules = [self.reference_unet, vae, self.text_encoder] + ([self.pose_guider] if self.reads_reference_pose else [])
        for module in modules:
            digest.update(type(module).__name__.encode())
            params = list(module.parameters())
            for p in (params[0], params[len(params) // 2], params[-1]):
                digest.update(p.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    @torch.no_grad()
    def set_reference(self, image, prompt: str = "", height: int | None = None, width: int | None = None,
                      feature_cache=None, reference_pose=None) -> ReferenceCache:
        """Run ReferenceNet ONCE on ``image`` and keep its tokens (and K/V projections) for every frame.

        Setting the same image (and prompt) again reuses the cache without another ReferenceNet pass.
        ``height``/``width``: resize the reference to the output size first (defaults to its own size).
        ``feature_cache``: a :class:`turbonext.utils.feature_cache.FeatureCache`; the tokens are then saved to
        (and later loaded from) disk, keyed by the image, prompt, size, model revision and dtype.
        """
        ref = image_to_tensor(image, "reference_image")  # (3, H, W)
        if height is not None and width is not None and tuple(ref.shape[1:]) != (height, width):
            ref = torch.nn.functional.interpolate(ref[None], size=(height, width), mode="bicubic", align_corners=False)[0]
        if ref.shape[1] % 8 or ref.shape[2] % 8:
            raise ValueError(f"reference_image size {tuple(ref.shape[1:])} (H, W) must be divisible by 8.")
        ref_pose = self._reference_pose_tensor(reference_pose, tuple(ref.shape[1:]))  # (3, H, W) or None
        key = self._reference_key(ref, prompt, ref_pose)
        cache = self.reference_state.cache
        if cache is not None and cache.key == key:
            return cache
        device = self.reference_unet.device
        disk_key = None
        if feature_cache is not None:
            disk_key = feature_cache.key("reference-net", key, model_revision=self.model_revision(),
                                         dtype=str(self.reference_unet.dtype))
            tokens = feature_cache.load_tensors(disk_key, device=str(device))
            if tokens is not None:
                cache = ReferenceCache.from_state_dict(tokens, key=key)
                cache.precompute_kv(self.unet)
                self.reference_state.cache, self.reference_state.mode = cache, "read"
                return cache
        latents = self.encode_images(ref[None].to(device)).to(self.reference_unet.dtype)  # (1, 4, h, w)
        text = self.encode_prompt(prompt, device).to(self.reference_unet.dtype)
        pose_features = None
        if ref_pose is not None:
            pose_features = self.pose_guider.encode_reference(ref_pose[None].to(device, self.pose_guider.dtype))
        cache = run_reference_net(self.reference_unet, self.reference_state, latents, text, pose_features)
        cache.key = key
        cache.precompute_kv(self.unet)
        if disk_key is not None:
            feature_cache.save_tensors(disk_key, cache.state_dict())
        return cache

    def clear_reference(self) -> None:
        self.reference_state.cache = None

    # ------------------------------------------------------------------ streaming
    def stream(self, reference_image=None, prompt: str = "", num_inference_steps: int = 4, window: int = 16,
               frames_per_level: int | None = None, generator: torch.Generator | None = None,
               compile: str | None = None, output_type: str = "pil", height: int | None = None,
               width: int | None = None, reference_pose=None):
        """A :class:`~turbonext.streaming.StreamSession` for live pose transfer (pipelined denoising).

        ``reference_image`` sets (or, if unchanged, reuses) the reference; ``None`` keeps the current one.
        ``frames_per_level`` (default ``window // num_inference_steps``) trades latency for throughput:
        each UNet call over ``window`` frames emits that many frames. ``compile``: a torch.compile mode
        such as "reduce-overhead" (CUDA graphs) or "max-autotune". ``height``/``width``: the pose
        frames' size, to which the reference is resized (as in :meth:`__call__`). ``reference_pose``: the
        reference's pose map, for models that read it (see :meth:`set_reference`).
        """
        if reference_image is not None:
            self.set_reference(reference_image, prompt=prompt, height=height, width=width, reference_pose=reference_pose)
        elif self.reference_state.cache is None:
            raise ValueError("no reference set: pass reference_image=... or call pipe.set_reference(image) first.")
        return StreamSession(self, prompt=prompt, num_inference_steps=num_inference_steps, window=window,
                             frames_per_level=frames_per_level, generator=generator, compile=compile,
                             output_type=output_type)

    # ------------------------------------------------------------------ checks
    def check_inputs(self, pose_images, reference_image, num_inference_steps: int, guidance_scale: float,
                     output_type: str, window_size: int, window_overlap: int, callback_on_step_end_tensor_inputs,
                     reference_pose=None) -> torch.Tensor:
        """Validate the inputs; returns the pose frames as a tensor (F, 3, H, W) in [0, 1]."""
        if pose_images is None:
            raise ValueError("pose_images is required: a list of pose images (one per output frame).")
        poses = images_to_tensor(pose_images, "pose_images")  # raises on empty / mixed / wrong-channel input
        height, width = poses.shape[-2:]
        if height % 8 or width % 8:
            raise ValueError(f"pose image size {height}x{width} (H x W) must be divisible by 8, e.g. 512x512.")
        if reference_image is None and self.reference_state.cache is None:
            raise ValueError("no reference set: pass reference_image=... or call pipe.set_reference(image) first.")
        if reference_image is not None and reference_pose is None and self.reads_reference_pose:
            raise ValueError(REFERENCE_POSE_REQUIRED)
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be an integer >= 1, got {num_inference_steps!r}.")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        context_windows(poses.shape[0], window_size, window_overlap)  # raises on a bad window/overlap
        bad = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback_on_step_end_tensor_inputs {bad} not in {self._callback_tensor_inputs}.")
        return poses

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def __call__(
        self,
        reference_image=None,
        pose_images=None,
        prompt: str = "",
        negative_prompt: str = "",
        num_inference_steps: int = 4,
        guidance_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        window_size: int = 16,
        window_overlap: int = 4,
        decode_chunk_size: int = 16,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        reference_pose=None,
    ) -> TurboNextPipelineOutput | tuple:
        r"""Render the person of ``reference_image`` in every pose of ``pose_images``.

        Args:
            reference_image: the person (PIL / array / tensor). ``None`` uses the reference set by
                :meth:`set_reference` (or by an earlier call). Resized to the pose size if needed.
            pose_images: pose maps, one per output frame: a list of images, an array (F, H, W, 3) or a
                tensor (F, 3, H, W). Their size (divisible by 8) is the output size.
            num_inference_steps: denoising steps (4 with LCM-LoRA).
            guidance_scale: classifier-free guidance on the prompt; 1.0 (default) disables it.
            window_size / window_overlap: clips longer than ``window_size`` frames are covered by
                overlapping windows whose predictions are blended at every step (no seams).
            output_type: "pil", "np", "pt" or "latent".
            callback_on_step_end: ``fn(pipe, step, timestep, callback_kwargs) -> dict`` after each step.
            reference_pose: the reference image's pose map, required with a new ``reference_image`` by
                models that read it (:attr:`reads_reference_pose`); ignored by the others.

        Returns:
            :class:`TurboNextPipelineOutput` (or a tuple ``(frames,)`` if ``return_dict=False``).
        """
        # 1. check inputs
        self._guidance_scale = guidance_scale
        poses = self.check_inputs(
            pose_images, reference_image, num_inference_steps, guidance_scale, output_type, window_size,
            window_overlap, callback_on_step_end_tensor_inputs, reference_pose,
        )
        num_frames, height, width = poses.shape[0], poses.shape[2], poses.shape[3]
        device, dtype = self._execution_device, self.unet.dtype

        # 2. reference (ReferenceNet runs only when the reference changes)
        if reference_image is not None:
            self.set_reference(reference_image, prompt=prompt, height=height, width=width, reference_pose=reference_pose)

        # 3. prompt and pose features (each pose frame through the guider once)
        text = self.encode_prompt(prompt, device).to(dtype)  # (1, 77, D)
        if self.do_classifier_free_guidance:
            text = torch.cat([self.encode_prompt(negative_prompt, device).to(dtype), text])  # (2, 77, D)
        pose_features = self.pose_guider(poses.to(device, self.pose_guider.dtype)).to(dtype)  # (F, 320, h, w)

        # 4. timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 5. latents (1, 4, F, h, w)
        shape = (1, self.unet.config.in_channels, num_frames, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}.")
        latents = latents.to(device, dtype) * self.scheduler.init_noise_sigma

        # 6. denoising loop over steps x windows
        windows = context_windows(num_frames, window_size, window_overlap)
        batch = text.shape[0]
        with self.progress_bar(total=len(timesteps) * len(windows)) as progress:
            for i, t in enumerate(timesteps):
                noise_pred = torch.zeros_like(latents, dtype=torch.float32)
                weight_sum = torch.zeros((num_frames,), device=device)
                for window in windows:
                    idx = list(window)
                    frames = len(idx)
                    model_in = self.scheduler.scale_model_input(latents[:, :, idx], t).repeat(batch, 1, 1, 1, 1)
                    pred = self.unet(
                        model_in, t,
                        encoder_hidden_states=text.repeat_interleave(frames, dim=0),  # (batch*frames, 77, D)
                        pose_features=pose_features[idx].repeat(batch, 1, 1, 1),
                        return_dict=False,
                    )[0].float()
                    if self.do_classifier_free_guidance:
                        uncond, cond = pred.chunk(2)
                        pred = uncond + guidance_scale * (cond - uncond)
                    w = window_weights(frames, device=device) if len(windows) > 1 else torch.ones(frames, device=device)
                    noise_pred[:, :, idx] += pred * w.view(1, 1, -1, 1, 1)
                    weight_sum[idx] += w
                    progress.update()
                noise_pred = noise_pred / weight_sum.view(1, 1, -1, 1, 1)
                latents = self.scheduler.step(noise_pred.to(dtype), t, latents, generator=generator, return_dict=False)[0]
                if callback_on_step_end is not None:
                    scope = locals()
                    callback_kwargs = {k: scope[k] for k in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)

        # 7. decode
        if output_type == "latent":
            frames = latents
        else:
            decoded = self.decode_latents(latents, chunk_size=decode_chunk_size)  # (F, 3, H, W)
            frames = tensor_to_pil(decoded) if output_type == "pil" else decoded.cpu()
            if output_type == "np":
                frames = frames.permute(0, 2, 3, 1).numpy()
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return TurboNextPipelineOutput(frames=frames)
