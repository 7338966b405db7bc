"""Shared fixtures: tiny components saved in the real Hub repos' layouts, and pipelines loaded from them.

No test touches the network: HF_HUB_OFFLINE is set before anything imports huggingface_hub.
"""

import fnmatch
import os
from pathlib import Path


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's OpenMP threads spin while they wait: when other processes share the 2 cores that turned 0.5 s tests into
# 30 s ones. Passive waiting costs nothing idle (full suite 154 s vs 151 s) and keeps a busy machine usable.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch


torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_hub(tmp_path_factory):
    """{role: folder} of tiny components in the layouts of the real repos (SD1.5, motion adapters, TAESD)."""
    from turbonext.loaders.hub_layouts import write_tiny_hub_layout

    return write_tiny_hub_layout(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="session")
def tiny_pipe_factory(tiny_hub):
    def make(**overrides):
        from turbonext import TurboNextPipeline

        kwargs = dict(base=tiny_hub["base"], motion_adapter=tiny_hub["motion_adapter"],
                      tiny_vae=tiny_hub["tiny_vae"], lcm_lora=None)
        kwargs.update(overrides)
        pipe = TurboNextPipeline.from_components(**kwargs)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return make


@pytest.fixture
def tiny_pipe(tiny_pipe_factory):
    return tiny_pipe_factory()


def make_pose_frames(num_frames: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Simple moving bright strokes on black: different per frame, deterministic."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(num_frames):
        img = np.zeros((size, size, 3), np.uint8)
        x = (8 + 3 * i) % (size - 8)
        img[8 : size - 8, x : x + 4] = rng.integers(100, 255, 3)
        img[size // 2 : size // 2 + 3, 4 : size - 4] = (255, 0, 0)
        frames.append(img)
    return frames


def make_reference(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.uint8)
    img[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = rng.integers(0, 255, 3)
    img[size // 8 : size // 4, 3 * size // 8 : 5 * size // 8] = rng.integers(0, 255, 3)
    return img


def write_tiny_lora(unet_folder, out_dir, fmt: str = "peft", rank: int = 4, seed: int = 0) -> str:
    """Write a random LoRA for the tiny base UNet, in diffusers/peft keys or kohya (`lora_unet_...`) keys."""
    from pathlib import Path

    from diffusers import UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(unet_folder)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    state = get_peft_model_state_dict(unet)  # "down_blocks.0...attn1.to_q.lora_A.weight"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "peft":
        tensors = {f"unet.{k}": v.contiguous() for k, v in state.items()}
    elif fmt == "kohya":
        tensors = {}
        for k, v in state.items():
            module, kind = k.rsplit(".lora_", 1)
            name = "lora_unet_" + module.replace(".", "_")
            tensors[f"{name}.lora_down.weight" if kind.startswith("A") else f"{name}.lora_up.weight"] = v.contiguous()
            tensors[f"{name}.alpha"] = torch.tensor(float(rank))
    else:
        raise ValueError(fmt)
    save_file(tensors, str(out / "pytorch_lora_weights.safetensors"))
    return str(out)


class FakeHfApi:
    """Records create_repo / upload_folder; lists the files upload_folder would send."""

    calls: list = []
    fail_with: Exception | None = None

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
        FakeHfApi.calls.append(("create_repo", repo_id, private))

    def upload_folder(self, repo_id, folder_path, repo_type=None, allow_patterns=None, commit_message=None):
        if FakeHfApi.fail_with is not None:
            raise FakeHfApi.fail_with
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()
                       and any(fnmatch.fnmatch(p.relative_to(folder_path).as_posix(), pat) for pat in allow_patterns))
        FakeHfApi.calls.append(("upload_folder", repo_id, files))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture
def fake_hub(monkeypatch):
    """turbonext.loaders.publish talks to this instead of the Hub."""
    from turbonext.loaders import publish as hub_publish

    FakeHfApi.calls, FakeHfApi.fail_with = [], None
    monkeypatch.setattr(hub_publish, "HfApi", FakeHfApi)
    return FakeHfApi


# ---------------------------------------------------------------------------------------------- CI guards
# `--require-all` (or TURBONEXT_REQUIRE_ALL=1): a run that skips any test it selected fails, listing the
# skipped tests and their reasons. CI and the README's test command use it, so that a broken `[pose]` or
# gradio install (importorskip) cannot turn tests into silent skips. Tests deselected by markers (-m, and
# the `gpu` tests below) are not skips and do not count; an xfail is not a skip either.
#
# Markers (pyproject.toml): `gpu` (real weights or a GPU) and `browser` (Chromium + Playwright, minutes:
# tests/test_browser.py) are deselected unless the -m expression names them (`-m gpu`, `-m browser`);
# `slow` (over ~5 s on a CPU) runs by default, and `-m "not slow"` is the quick run.
REQUIRE_ALL_ENV = "TURBONEXT_REQUIRE_ALL"


def pytest_addoption(parser):
    parser.getgroup("turbonext").addoption(
        "--require-all", action="store_true", default=False,
        help=f"fail the run if any selected test is skipped (also: {REQUIRE_ALL_ENV}=1); CI sets it",
    )


def require_all(config) -> bool:
    env = os.environ.get(REQUIRE_ALL_ENV, "").strip().lower()
    return bool(config.getoption("require_all", False)) or env not in ("", "0", "false", "no", "off")


class RequireAll:
    """Collects the skips of a run and fails it at the end if there were any."""

    def __init__(self):
        self.skipped: list[tuple[str, str]] = []

    def _record(self, report, nodeid: str) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        self.skipped.append((nodeid or "<collection>", reason.removeprefix("Skipped: ")))

    def pytest_collectreport(self, report):  # a module-level skip (pytest.importorskip at import time)
        self._record(report, report.nodeid)

    def pytest_runtest_logreport(self, report):
        self._record(report, report.nodeid)

    def pytest_sessionfinish(self, session):
        if self.skipped and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.skipped:
            return
        tr = terminalreporter
        tr.section(f"--require-all: {len(self.skipped)} skipped, none allowed", sep="=", red=True, bold=True)
        for nodeid, reason in self.skipped:
            tr.line(f"SKIPPED {nodeid}: {reason}", red=True)
        tr.line('Every selected test must run here: install what they need (pip install -e ".[test,pose]"), '
                f"deselect them with -m, or run without --require-all / {REQUIRE_ALL_ENV}.")


def pytest_configure(config):
    if require_all(config):
        config.pluginmanager.register(RequireAll(), "turbonext-require-all")


OPT_IN_MARKERS = ("gpu", "browser")  # deselected unless the -m expression names them


def pytest_collection_modifyitems(config, items):
    """Deselect `gpu` and `browser` tests unless the -m expression names their marker (e.g. `-m browser`)."""
    markexpr = config.getoption("markexpr", "") or ""
    left_out = [name for name in OPT_IN_MARKERS if name not in markexpr]
    deselected = [item for item in items if any(item.get_closest_marker(name) is not None for name in left_out)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        dropped = {id(item) for item in deselected}
        items[:] = [item for item in items if id(item) not in dropped]
