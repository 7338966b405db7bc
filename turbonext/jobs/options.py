"""A user's render options on a pipeline that several users share: the sampling mode (Fast / HQ) and style LoRAs.

The app serves every user from one pipeline, and a mode or a LoRA is state of that pipeline (its scheduler, its
adapters). So a user's choice is never left on it: :func:`applied_options` puts it on for one render and takes it
off again, inside :func:`~turbonext.jobs.sharing.pipeline_lock` (which every render and live stream step holds),
so no other user's clip or stream ever runs with it. The checks say in one sentence for the user what was wrong
(a file that is not a LoRA, one made for another model, a 4th LoRA, a mode this model cannot do). Free of any UI.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from diffusers import LCMScheduler

from turbonext.jobs.sharing import pipeline_lock
from turbonext.jobs.uploads import display_name
from turbonext.pipelines.pipeline_turbonext import MAX_STYLE_LORAS, MODE_DEFAULTS


#: Sampling modes a user may choose, with what each costs (the pipeline's MODE_DEFAULTS).
MODES = ("fast", "hq")
#: Style LoRA files larger than this are refused (SD1.5 LoRAs are a few to ~150 MB; the app's uploads stop at 200 MB).
MAX_STYLE_LORA_BYTES = 200 * 1024 * 1024
MIN_STYLE_WEIGHT, MAX_STYLE_WEIGHT = 0.0, 1.5
#: Adapter names of a user's LoRAs while they are on the pipeline (never those of LoRAs the pipeline came with).
USER_ADAPTER_PREFIX = "user_style"
ACCEPTED_LORAS = "a .safetensors LoRA made for Stable Diffusion 1.5 (diffusers or kohya keys)"


@dataclass(frozen=True)
class StyleLora:
    """One style LoRA a user chose: the uploaded file, its weight, and the name the user knows it by."""

    path: str
    weight: float = 0.8
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or display_name(self.path)


# ------------------------------------------------------------------------------------------- modes
def mode_costs() -> dict[str, str]:
    """What each mode costs, one line each, from the pipeline's defaults."""
    fast, hq = MODE_DEFAULTS["fast"], MODE_DEFAULTS["hq"]
    return {
        "fast": f"LCM, {fast['num_inference_steps']} steps, guidance {fast['guidance_scale']:g} (one UNet pass per "
                "step)",
        "hq": f"LCM-LoRA off, DPM-Solver++ (Karras), {hq['num_inference_steps']} steps, guidance "
              f"{hq['guidance_scale']:g} with a negative prompt (two UNet passes per step): about "
              f"{round(2 * hq['num_inference_steps'] / fast['num_inference_steps'])}x the time of Fast",
    }


def default_steps(mode: str | None) -> int:
    """The step count a mode samples with (Fast's for None)."""
    return int(MODE_DEFAULTS.get(mode or "fast", MODE_DEFAULTS["fast"])["num_inference_steps"])


def _has_lcm_adapter(pipe) -> bool:
    return "lcm" in pipe.get_list_adapters().get("unet", [])


def _lcm_scheduler(pipe) -> bool:
    return isinstance(pipe.scheduler, LCMScheduler)


def mode_problems(pipe) -> dict[str, str | None]:
    """``{mode: None if ``pipe`` can sample in it, else a sentence for the user saying why not}``.

    Mirrors :meth:`~turbonext.TurboNextPipeline.set_mode`'s checks without changing the pipeline: read it while
    no render runs (the app does once, at start; a render with HQ swaps the scheduler while it runs)."""
    switchable = _has_lcm_adapter(pipe)
    lcm = _lcm_scheduler(pipe)
    fused = not switchable and (getattr(pipe, "_lcm_fused", False) or (lcm and pipe.mode is None))
    problems: dict[str, str | None] = {"fast": None, "hq": None}
    if not switchable and not lcm:
        problems["fast"] = ("Fast mode is not available with this model: it has no LCM-LoRA (Fast samples "
                            f"{default_steps('fast')} LCM steps). Use HQ.")
    if fused:
        problems["hq"] = ("HQ mode is not available with this model: its LCM-LoRA is fused into its weights (as in "
                          "the demo model), so there are no weights without LCM to sample from. Use Fast (HQ needs a "
                          "model that keeps LCM-LoRA as a separate, switchable adapter).")
    return problems


def model_default_mode(pipe) -> str | None:
    """The mode the model samples in as loaded ("fast", "hq"), or None when it is neither (its own sampler)."""
    if pipe.mode in MODES:
        return pipe.mode
    return "fast" if _lcm_scheduler(pipe) else None


def _apply_mode(pipe, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"the mode must be one of {', '.join(MODES)}; got {mode!r}.")
    if pipe.mode is None and mode == "fast" and _lcm_scheduler(pipe) and not _has_lcm_adapter(pipe):
        return  # LCM is part of the model (fused or distilled): it samples in Fast mode already
    problem = mode_problems(pipe)[mode]
    if problem:
        raise ValueError(problem)
    pipe.set_mode(mode)


def _restore_mode(pipe, mode: str | None, scheduler) -> None:
    if pipe.mode == mode and pipe.scheduler is scheduler:
        return
    pipe.restore_sampling(scheduler, mode)  # LCM-LoRA's weight as it was, the styles' too


# ------------------------------------------------------------------------------------------- style LoRAs
def _lora_problem(name: str, err: BaseException) -> str:
    """A LoRA the pipeline could not load -> one sentence for the user."""
    text = " ".join(str(err).split())
    kind = type(err).__name__
    if "SafetensorError" in kind or "header" in text.lower() or "deserializ" in text.lower():
        return (f"The style LoRA {name!r} could not be read as a safetensors file: it may be damaged or not a "
                f"safetensors file. Upload {ACCEPTED_LORAS}.")
    if "size mismatch" in text or "NoMatchingPeftModule" in kind or "not found in the base model" in text:
        return (f"The style LoRA {name!r} does not fit this model: its layers have other names or shapes (a LoRA "
                f"for another base model, such as SDXL or SD 2.x?). Upload {ACCEPTED_LORAS}.")
    if "lora" in text.lower() or "state dict" in text.lower() or isinstance(err, (KeyError, ValueError)):
        return (f"The style LoRA {name!r} is not a LoRA for this model's UNet (no LoRA weights it can use were "
                f"found in it). Upload {ACCEPTED_LORAS}.")
    return f"The style LoRA {name!r} could not be loaded ({text[:200]}). Upload {ACCEPTED_LORAS}."


def read_style_lora_upload(path, weight: float = 0.8) -> StyleLora:
    """An uploaded style LoRA file -> a :class:`StyleLora`, or a ``ValueError`` with one sentence for the user.

    Checks what can be checked without the model: a ``.safetensors`` file (never a pickle), not empty, not
    over :data:`MAX_STYLE_LORA_BYTES`, a readable header holding LoRA weights, and a weight in
    [:data:`MIN_STYLE_WEIGHT`, :data:`MAX_STYLE_WEIGHT`]. Whether it fits the model: :func:`check_style_lora`."""
    if not path:
        raise ValueError(f"No style LoRA file yet: upload {ACCEPTED_LORAS}.")
    name, file = display_name(path), Path(str(path))
    if not file.is_file():
        raise ValueError(f"The style LoRA {name!r} was not found on the server; upload it again.")
    if file.suffix.lower() != ".safetensors":
        raise ValueError(f"{name!r} is not a .safetensors file. Upload {ACCEPTED_LORAS} (other formats are not "
                         "read, for safety).")
    size = file.stat().st_size
    if size == 0:
        raise ValueError(f"The style LoRA {name!r} is empty (0 bytes). Upload {ACCEPTED_LORAS}.")
    if size > MAX_STYLE_LORA_BYTES:
        raise ValueError(f"The style LoRA {name!r} is {size / 2**20:.0f} MB; at most {MAX_STYLE_LORA_BYTES // 2**20} MB "
                         "is accepted (SD 1.5 LoRAs are usually 10-150 MB).")
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        weight = float("nan")
    if not MIN_STYLE_WEIGHT <= weight <= MAX_STYLE_WEIGHT:
        raise ValueError(f"The style weight must be from {MIN_STYLE_WEIGHT:g} to {MAX_STYLE_WEIGHT:g}; got {weight}.")
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as err:  # SafetensorError and friends: a damaged file or another format renamed
        raise ValueError(_lora_problem(name, err)) from err
    if not any("lora" in key.lower() for key in keys):
        raise ValueError(f"The style LoRA {name!r} holds no LoRA weights ({len(keys)} tensors, none named like a "
                         f"LoRA's): it may be a full model or another kind of file. Upload {ACCEPTED_LORAS}.")
    return StyleLora(str(file), weight, name)


def _load_user_loras(pipe, loras: Sequence[StyleLora]) -> list[str]:
    """Load ``loras`` under user adapter names; returns the names (a failure raises after the caller cleans up)."""
    own = pipe.style_loras
    if len(own) + len(loras) > MAX_STYLE_LORAS:
        theirs = f" (the model has {len(own)} of its own)" if own else ""
        raise ValueError(f"At most {MAX_STYLE_LORAS - len(own)} style LoRAs can be stacked{theirs}; you chose "
                         f"{len(loras)}. Remove style LoRAs first.")
    names = []
    for i, lora in enumerate(loras):
        name = f"{USER_ADAPTER_PREFIX}{i + 1}"
        if not Path(lora.path).is_file():
            raise ValueError(f"The style LoRA {lora.name!r} is no longer on the server; add it again.")
        try:
            pipe.load_style_lora(lora.path, weight=lora.weight, name=name)
        except Exception as err:  # diffusers/peft raise RuntimeError, ValueError, SafetensorError, peft's own ...
            raise ValueError(_lora_problem(lora.name, err)) from err
        if name not in pipe.get_list_adapters().get("unet", []):
            raise ValueError(_lora_problem(lora.name, ValueError("no LoRA weights for the UNet")))
        names.append(name)
    return names


def _unload_user_loras(pipe) -> None:
    """Take every user adapter off the pipeline (loaded or half loaded); the pipeline's own LoRAs (and LCM-LoRA)
    stay as they were."""
    present = {name for names in pipe.get_list_adapters().values() for name in names}  # UNet and text encoder
    users = set(name for name in present | set(pipe.style_loras) if name.startswith(USER_ADAPTER_PREFIX))
    pipe.unload_style_loras(sorted(users))


@contextlib.contextmanager
def applied_options(pipe, mode: str | None = None, style_loras: Sequence[StyleLora] = ()) -> Iterator[None]:
    """Put a user's ``mode`` and ``style_loras`` on ``pipe`` for the body of the ``with``, then take them off.

    Holds :func:`~turbonext.jobs.sharing.pipeline_lock` throughout (reentrant: callers may hold it already), so
    no other render or live stream step sees them. Raises a ``ValueError`` with a sentence for the user for a
    mode the model cannot do or a LoRA that cannot be loaded; the pipeline is left as it was either way."""
    with pipeline_lock(pipe):
        scheduler, mode_before = pipe.scheduler, pipe.mode
        try:
            if mode:
                _apply_mode(pipe, mode)
            if style_loras:
                _load_user_loras(pipe, list(style_loras))
            yield
        finally:
            _unload_user_loras(pipe)
            _restore_mode(pipe, mode_before, scheduler)


def check_style_lora(pipe, lora: StyleLora, chosen: Sequence[StyleLora] = (), timeout: float | None = None) -> bool:
    """Whether ``lora`` can join the user's ``chosen`` ones on ``pipe``: the stack limit, then a trial load (and
    unload) of it alone. A ``ValueError`` with a sentence for the user when not.

    The trial needs the pipeline's lock: with a ``timeout`` (seconds) and the pipeline busy that long (another
    user's render), it is skipped and False returned (the render then loads it, and says so if it does not fit);
    True when the file was tried."""
    limit = MAX_STYLE_LORAS - len(pipe.style_loras)
    if len(chosen) >= limit:
        raise ValueError(f"At most {limit} style LoRAs can be stacked, and {len(chosen)} are chosen "
                         f"({', '.join(item.name for item in chosen)}): remove style LoRAs first.")
    lock = pipeline_lock(pipe)
    if not lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
        return False
    try:
        with applied_options(pipe, style_loras=[lora]):
            pass
    finally:
        lock.release()
    return True


def describe_style_loras(loras: Sequence[StyleLora]) -> str:
    """One line for the user: the chosen style LoRAs and their weights."""
    if not loras:
        return "No style LoRA: the model's own style."
    return "Style LoRAs: " + ", ".join(f"{lora.name} at {lora.weight:g}" for lora in loras) + "."
