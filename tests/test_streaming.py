"""StreamSession: equivalence with a plain implementation of the same schedule, cost accounting, API."""

import time

import numpy as np
import pytest
import torch
from conftest import make_pose_frames, make_reference
from diffusers import LCMScheduler

from turbonext.schedulers.scheduling_staggered_lcm import StaggeredLCMSchedule
from turbonext.streaming.runner import LatestFrameRunner
from turbonext.utils.images import image_to_tensor


def test_staggered_schedule_matches_lcm_scheduler_at_every_level(tiny_pipe):
    steps = 4
    schedule = StaggeredLCMSchedule(tiny_pipe.scheduler.config, steps)
    sched = LCMScheduler.from_config(tiny_pipe.scheduler.config)
    sched.set_timesteps(steps)
    x, eps = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 4, 3, 8, 8)
    for level, t in enumerate(sched.timesteps):
        sched._step_index = level
        expected = sched.step(eps, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
        got, _ = schedule.step(eps, x, torch.full((3,), level), noise)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def plain_stream(pipe, poses, steps, window, per_level, seed):
    """The same schedule, written plainly: a Python list of slots, LCMScheduler.step per frame."""
    gen = torch.Generator().manual_seed(seed)
    sched = LCMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    ts = sched.timesteps
    context = window - steps * per_level
    text = pipe.encode_prompt("", torch.device("cpu"))
    feats = [pipe.pose_guider(image_to_tensor(p)[None])[0] for p in poses]
    groups = [list(range(i, min(i + per_level, len(poses)))) for i in range(0, len(poses), per_level)]
    slots, outputs = None, {}
    while groups or any(s["id"] is not None for s in slots[context:]):
        group = groups.pop(0) if groups else []
        if slots is None:
            init = torch.randn((1, 4, window, 8, 8), generator=gen)
            slots = [{"id": None, "feat": feats[group[0]], "x": init[0, :, j]} for j in range(window)]
        last_feat = feats[group[-1]] if group else slots[-1]["feat"]
        fresh = torch.randn((1, 4, per_level, 8, 8), generator=gen)
        new = []
        for j in range(per_level):
            if j < len(group):
                new.append({"id": group[j], "feat": feats[group[j]], "x": fresh[0, :, j]})
            else:
                new.append({"id": None, "feat": last_feat, "x": fresh[0, :, j]})
        slots = slots[per_level:] + new
        timesteps = []
        for pos, s in enumerate(slots):
            if s["id"] is None:
                timesteps.append(int(ts[0]))
            elif pos < context:
                timesteps.append(0)
            else:
                timesteps.append(int(ts[steps - 1 - (pos - context) // per_level]))
        x = torch.stack([s["x"] for s in slots], dim=1)[None]
        eps = pipe.unet(x, torch.tensor([timesteps]), encoder_hidden_states=text.expand(window, -1, -1),
                        pose_features=torch.stack([s["feat"] for s in slots]),
                        cross_attention_kwargs={"reference": pipe.reference_state.cache}, return_dict=False)[0]
        renoised = context + per_level  # slots at levels 0..K-2 get fresh noise; nothing else draws any
        noise = torch.randn((1, 4, window - renoised, 8, 8), generator=gen)
        for pos in range(context, window):
            s = slots[pos]
            if s["id"] is None:
                continue
            level = steps - 1 - (pos - context) // per_level
            sched._step_index = steps - 1  # the last index returns the denoised sample, no noise
            denoised = sched.step(eps[:, :, pos], ts[level], x[:, :, pos]).prev_sample[0]
            if level == steps - 1:
                s["x"] = denoised
                outputs[s["id"]] = denoised
            else:
                a_next = sched.alphas_cumprod[ts[level + 1]]
                s["x"] = a_next.sqrt() * denoised + (1 - a_next).sqrt() * noise[0, :, pos - renoised]
    latents = torch.stack([outputs[i] for i in range(len(poses))], dim=1)[None]
    return (pipe.decode_latents(latents)[0].permute(1, 0, 2, 3) / 2 + 0.5).clamp(0, 1)  # (F, 3, H, W) in [0, 1]


@pytest.mark.parametrize("schedule, window, per_level", [
    ("staggered", 16, 4), ("staggered", 8, 1), ("staggered", 12, 2), ("uniform", 8, 4), ("uniform", 6, 2), ("uniform", 4, 4)])
@torch.no_grad()
def test_stream_equals_plain_implementation(tiny_pipe, schedule, window, per_level):
    torch.nn.init.normal_(tiny_pipe.pose_guider.zero_conv.weight, std=0.5)  # make poses matter
    poses = make_pose_frames(11)
    session = tiny_pipe.stream(reference_image=make_reference(), window=window, frames_per_level=per_level,
                               generator=torch.Generator().manual_seed(3), output_type="pt", schedule=schedule)
    frames = []
    for p in poses:
        frames += session.step(p)
    frames += session.flush()
    assert len(frames) == len(poses)
    plain = plain_stream if schedule == "staggered" else plain_uniform_stream
    expected = plain(tiny_pipe, poses, 4, window, per_level, seed=3)
    torch.testing.assert_close(torch.stack(frames), expected, rtol=0, atol=1e-4)


def plain_uniform_stream(pipe, poses, steps, window, per_level, seed):
    """The uniform layout, written plainly: groups of m new frames go through all K levels together (one
    LCMScheduler level per UNet call) while the finished frames before them are re-noised to that level."""
    gen = torch.Generator().manual_seed(seed)
    sched = LCMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(steps)
    text = pipe.encode_prompt("", torch.device("cpu"))
    feats = [pipe.pose_guider(image_to_tensor(p)[None])[0] for p in poses]
    latents, slot_feats, finished, outputs = None, None, None, {}
    for start in range(0, len(poses), per_level):
        ids = list(range(start, min(start + per_level, len(poses))))
        new_feats = [feats[i] for i in ids] + [feats[ids[-1]]] * (per_level - len(ids))  # ghosts repeat the last
        if latents is None:  # ghosts before the first group: the first pose, denoised with it, never output
            latents = torch.randn((1, 4, window, 8, 8), generator=gen)
            slot_feats, finished = [feats[ids[0]]] * window, [False] * window
        latents = torch.cat([latents[:, :, per_level:], torch.randn((1, 4, per_level, 8, 8), generator=gen)], dim=2)
        slot_feats, finished = slot_feats[per_level:] + new_feats, finished[per_level:] + [False] * per_level
        for k, t in enumerate(sched.timesteps):
            noise = torch.randn((1, 4, window, 8, 8), generator=gen)
            x = torch.stack([sched.add_noise(latents[:, :, j], noise[:, :, j], t[None]) if finished[j]
                             else latents[:, :, j] for j in range(window)], dim=2)
            eps = pipe.unet(x, t, encoder_hidden_states=text.expand(window, -1, -1),
                            pose_features=torch.stack(slot_feats),
                            cross_attention_kwargs={"reference": pipe.reference_state.cache}, return_dict=False)[0]
            renoise = torch.randn((1, 4, window, 8, 8), generator=gen) if k < steps - 1 else None
            for j in range(window):
                if finished[j]:
                    continue
                sched._step_index = steps - 1  # the last index returns the denoised sample, no noise
                denoised = sched.step(eps[:, :, j], t, latents[:, :, j]).prev_sample
                if renoise is None:
                    latents[:, :, j] = denoised
                else:
                    a_next = sched.alphas_cumprod[sched.timesteps[k + 1]]
                    latents[:, :, j] = a_next.sqrt() * denoised + (1 - a_next).sqrt() * renoise[:, :, j]
        finished = [True] * window
        for n, i in enumerate(ids):
            outputs[i] = latents[:, :, window - per_level + n]
    video = torch.stack([outputs[i][0] for i in range(len(poses))], dim=1)[None]
    return (pipe.decode_latents(video)[0].permute(1, 0, 2, 3) / 2 + 0.5).clamp(0, 1)  # (F, 3, H, W) in [0, 1]


def test_uniform_costs_k_calls_per_group_at_one_level_each(tiny_pipe):
    session = tiny_pipe.stream(reference_image=make_reference(), window=8, frames_per_level=4, output_type="np",
                               schedule="uniform")
    timesteps = []
    tiny_pipe.unet.register_forward_hook(lambda m, a, o: timesteps.append(a[1]))
    ready = [len(session.step(p)) for p in make_pose_frames(12)]
    assert ready == [0, 0, 0, 4] * 3  # a group of 4 leaves as soon as it is complete
    assert len(timesteps) == 3 * 4 and all(t.shape == (1, 8) and (t == t[0, 0]).all() for t in timesteps)
    assert [int(t[0, 0]) for t in timesteps[:4]] == session.schedule.timesteps.tolist()
    assert list(session.stats.latency_frames) == [3, 2, 1, 0] * 3


def test_default_schedule_is_the_unets_config(tiny_pipe, tmp_path):
    assert tiny_pipe.unet.config.stream_schedule == "uniform"  # not trained on staggered windows
    assert tiny_pipe.stream(reference_image=make_reference()).schedule_name == "uniform"
    tiny_pipe.unet.register_to_config(stream_schedule="staggered")
    try:
        assert tiny_pipe.stream(reference_image=make_reference()).schedule_name == "staggered"
        assert tiny_pipe.stream(schedule="uniform").schedule_name == "uniform"  # the argument overrides
        tiny_pipe.unet.save_pretrained(tmp_path)
        loaded = type(tiny_pipe.unet).from_pretrained(tmp_path)
        assert loaded.config.stream_schedule == "staggered"
    finally:
        tiny_pipe.unet.register_to_config(stream_schedule="uniform")
    with pytest.raises(ValueError, match="stream_schedule must be one of"):
        type(tiny_pipe.unet).from_config(tiny_pipe.unet.config, stream_schedule="diagonal")


@torch.no_grad()
def test_streams_sharing_a_pipeline_keep_their_own_references(tiny_pipe):
    """Two users, one pipeline: interleaved steps render exactly what each stream renders alone."""
    poses = make_pose_frames(6)

    def solo(seed, reference):
        s = tiny_pipe.stream(reference_image=reference, generator=torch.Generator().manual_seed(seed), window=8,
                             frames_per_level=2, output_type="np")
        return np.stack([f for p in poses for f in s.step(p)] + s.flush())

    ref_a, ref_b = make_reference(seed=1), make_reference(seed=2)
    alone_a, alone_b = solo(1, ref_a), solo(2, ref_b)
    assert np.abs(alone_a.astype(int) - alone_b.astype(int)).sum() > 0
    sa = tiny_pipe.stream(reference_image=ref_a, generator=torch.Generator().manual_seed(1), window=8,
                          frames_per_level=2, output_type="np")
    sb = tiny_pipe.stream(reference_image=ref_b, generator=torch.Generator().manual_seed(2), window=8,
                          frames_per_level=2, output_type="np")  # the pipeline's reference is now b's
    fa, fb = [], []
    for p in poses:
        fa += sa.step(p)
        fb += sb.step(p)
    np.testing.assert_array_equal(np.stack(fa + sa.flush()), alone_a)
    np.testing.assert_array_equal(np.stack(fb + sb.flush()), alone_b)


@torch.no_grad()
def test_each_tick_draws_noise_only_for_what_it_renoises_and_decodes_a_slice(tiny_pipe, monkeypatch):
    """No wasted work or copies per tick: fresh noise for the m new frames, renoising noise for the frames at
    levels 0..K-2 only, both on the session's device; the finished frames decoded straight from the window."""
    generator = torch.Generator().manual_seed(0)
    session = tiny_pipe.stream(reference_image=make_reference(), window=12, frames_per_level=2, generator=generator,
                               output_type="np", schedule="staggered")
    assert session.generator is generator  # already on the session's device: used as it is
    drawn, decoded = [], []
    randn = torch.randn

    def spy_randn(*shape, **kwargs):
        drawn.append((tuple(shape[0] if len(shape) == 1 else shape), str(kwargs.get("device"))))
        return randn(*shape, **kwargs)

    decode = tiny_pipe.decode_latents

    def spy_decode(latents, *args, **kwargs):
        decoded.append(latents.untyped_storage().data_ptr() == session.latents.untyped_storage().data_ptr())
        return decode(latents, *args, **kwargs)

    monkeypatch.setattr(torch, "randn", spy_randn)
    monkeypatch.setattr(tiny_pipe, "decode_latents", spy_decode)
    frames = [f for p in make_pose_frames(10) for f in session.step(p)] + session.flush()
    assert len(frames) == 10 and decoded and all(decoded)  # slices of the window, no gathered copy
    m, levels, window = 2, 4, 12
    allowed = {(1, 4, window, 8, 8), (1, 4, m, 8, 8), (1, 4, (levels - 1) * m, 8, 8)}
    assert {shape for shape, _ in drawn} <= allowed and (1, 4, (levels - 1) * m, 8, 8) in {s for s, _ in drawn}
    assert sum(shape == (1, 4, window, 8, 8) for shape, _ in drawn) == 1  # the first window only
    assert {device for _, device in drawn} == {str(session.device)}


def test_fixed_seed_gives_identical_streams(tiny_pipe):
    def run(seed):
        s = tiny_pipe.stream(reference_image=make_reference(), generator=torch.Generator().manual_seed(seed),
                             output_type="np")
        out = [f for p in make_pose_frames(6) for f in s.step(p)] + s.flush()
        return np.stack(out)

    np.testing.assert_array_equal(run(1), run(1))
    assert np.abs(run(1).astype(int) - run(2).astype(int)).sum() > 0


@pytest.mark.parametrize("schedule", ["staggered", "uniform"])
def test_tick_profiler_times_every_section_without_changing_output(tiny_pipe, schedule):
    from turbonext.streaming.profiler import TickProfiler

    def run(profiled):
        s = tiny_pipe.stream(reference_image=make_reference(), generator=torch.Generator().manual_seed(3),
                             output_type="np", frames_per_level=2, schedule=schedule)
        if profiled:
            s.profiler = TickProfiler("cpu")
        out = [f for p in make_pose_frames(8) for f in s.step(p)] + s.flush()
        return np.stack(out), s

    plain, _ = run(False)
    timed, session = run(True)
    np.testing.assert_array_equal(plain, timed)
    summary = session.profiler.summary()
    calls_per_tick = 1 if schedule == "staggered" else session.levels  # uniform: K calls per group of frames
    assert summary["ticks"] * calls_per_tick == session.stats.unet_calls
    sections = [summary[f"{k}_ms"] for k in ("pose_guider", "unet", "scheduler", "decode")]
    assert all(v >= 0 for v in sections) and summary["unet_ms"] > 0
    assert summary["tick_ms"] >= sum(sections) * 0.99 and summary["host_ms"] >= 0


@pytest.mark.slow  # torch.compile traces twice: 11-19 s on 2 cores
def test_stream_unet_traces_to_one_static_graph_per_window(tiny_pipe, monkeypatch):
    """What CUDA graphs need (compile="reduce-overhead"): the window's UNet call is one graph with static
    shapes through the fill, the steady state and the flush (ghost frames), so it is captured once and
    never re-traced mid-stream; and a session with another window gets its own static graph, not a
    symbolic-shape retrace (dynamo's automatic dynamic shapes). Tracing only: the session's
    torch.compile call keeps its arguments but gets a recording backend, seconds on a CPU."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    graphs = []

    def recorder(gm, example_inputs):
        graphs.append(any(isinstance(x, torch.SymInt) or (isinstance(x, torch.Tensor) and
                                                          any(isinstance(d, torch.SymInt) for d in x.shape))
                          for x in example_inputs))  # True: traced with symbolic shapes
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode=None, **kwargs: real_compile(model, backend=recorder, **kwargs))
    torch._dynamo.reset()
    counters.clear()

    def run(compile, window=16, frames=11):  # 11: a partial group at flush
        s = tiny_pipe.stream(reference_image=make_reference(), generator=torch.Generator().manual_seed(5),
                             window=window, frames_per_level=2, output_type="pt", compile=compile)
        out = [f for p in make_pose_frames(frames) for f in s.step(p)] + s.flush()
        return torch.stack(out), s

    try:
        plain, _ = run(None)
        traced, session = run("reduce-overhead")
        assert session.stats.unet_calls >= 8 and graphs == [False]  # one static graph for the whole stream
        assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
        torch.testing.assert_close(traced, plain, rtol=0, atol=1e-5)
        session.set_reference(make_reference(seed=9))  # a new photo: new reference K/V, the same graph
        for p in make_pose_frames(6):
            session.step(p)
        assert graphs == [False] and session.stats.unet_calls >= 3
        run("reduce-overhead", window=8, frames=4)
        assert graphs == [False, False]  # window 8: its own static graph
    finally:
        torch._dynamo.reset()


def test_costs_one_unet_call_per_group_guider_once_per_frame_no_referencenet(tiny_pipe):
    session = tiny_pipe.stream(reference_image=make_reference(), frames_per_level=4, output_type="np",
                               schedule="staggered")
    unet_frames, guider_frames, ref_calls = [], [], []
    tiny_pipe.unet.register_forward_hook(lambda m, a, o: unet_frames.append(a[0].shape[2]))
    tiny_pipe.pose_guider.register_forward_hook(lambda m, a, o: guider_frames.append(a[0].shape[0]))
    tiny_pipe.reference_unet.register_forward_hook(lambda *a: ref_calls.append(1))
    out = []
    for i, p in enumerate(make_pose_frames(20)):
        ready = session.step(p)
        out += ready
        assert (len(ready) > 0) == (i >= 15 and (i + 1) % 4 == 0)  # 4 levels x 4 frames: first output at frame 16
    assert unet_frames == [16] * 5  # one call per 4 frames, always the full window
    assert sum(guider_frames) == 20 and ref_calls == []
    assert len(out) == 8 and session.stats.frames_out == 8
    out += session.flush()
    assert len(out) == 20 and sum(guider_frames) == 20
    stats = session.stats.summary()
    assert stats["frames_in"] == 20 and stats["frames_out"] == 20 and stats["p95_latency_ms"] > 0


def test_low_latency_setting_emits_every_frame_after_warmup(tiny_pipe):
    session = tiny_pipe.stream(reference_image=make_reference(), window=8, frames_per_level=1, output_type="np",
                               schedule="staggered")
    ready = [len(session.step(p)) for p in make_pose_frames(8)]
    assert ready == [0, 0, 0, 1, 1, 1, 1, 1]  # a frame leaves 4 calls after it entered
    assert list(session.stats.latency_frames) == [3] * 5


def test_reset_and_new_reference(tiny_pipe):
    ref_calls = []
    tiny_pipe.reference_unet.register_forward_hook(lambda *a: ref_calls.append(1))
    session = tiny_pipe.stream(reference_image=make_reference(seed=1), output_type="np")
    for p in make_pose_frames(5):
        session.step(p)
    session.reset()
    assert session.stats.frames_in == 0 and session.flush() == []
    session.set_reference(make_reference(seed=2))
    assert len(ref_calls) == 2  # once per reference, never per frame


def test_stream_errors(tiny_pipe):
    with pytest.raises(ValueError, match="no reference set"):
        tiny_pipe.stream()
    with pytest.raises(ValueError, match="cannot hold"):
        tiny_pipe.stream(reference_image=make_reference(), window=8, frames_per_level=4, schedule="staggered")
    with pytest.raises(ValueError, match="cannot hold"):
        tiny_pipe.stream(reference_image=make_reference(), window=8, frames_per_level=9, schedule="uniform")
    with pytest.raises(ValueError, match="schedule must be one of"):
        tiny_pipe.stream(reference_image=make_reference(), schedule="diagonal")
    with pytest.raises(ValueError, match="maximum"):
        tiny_pipe.stream(reference_image=make_reference(), window=64)
    session = tiny_pipe.stream(reference_image=make_reference())
    session.step(make_pose_frames(1)[0])
    with pytest.raises(ValueError, match="differs"):
        session.step(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="divisible by 8"):
        session.step(np.zeros((30, 32, 3), np.uint8))


class SlowSession:
    def __init__(self, delay: float = 0.02):
        self.seen, self.delay = [], delay

    def step(self, frame):
        time.sleep(self.delay)
        self.seen.append(frame)
        return [frame * 10]


def test_latest_frame_wins_and_nothing_grows():
    session = SlowSession()
    with LatestFrameRunner(session, max_outputs=3) as runner:
        for i in range(200):
            runner.submit(i)
            time.sleep(0.0005)
        deadline = time.time() + 2
        while (not session.seen or session.seen[-1] != 199) and time.time() < deadline:
            time.sleep(0.01)
    assert session.seen[-1] == 199  # the newest frame always gets rendered
    assert len(session.seen) < 100 and runner.dropped > 100  # stale frames dropped, no backlog
    assert runner.processed + runner.dropped == runner.submitted
    assert len(runner.outputs) <= 3
    assert session.seen == sorted(session.seen)


def wait_for_error(runner, seconds: float = 2.0) -> None:
    deadline = time.time() + seconds
    while runner.error is None and time.time() < deadline:
        time.sleep(0.01)


def test_runner_surfaces_worker_errors():
    class Broken:
        def step(self, frame):
            raise ValueError("bad frame")

    runner = LatestFrameRunner(Broken())
    runner.submit(1)
    wait_for_error(runner)
    with pytest.raises(RuntimeError, match="bad frame"):
        runner.submit(2)
    runner.close()
    assert not any(t.is_alive() for t in runner._threads)


def test_runner_prepares_only_frames_the_model_takes():
    """With ``prepare`` (pose detection in the app), a frame replaced before the model is ready is never
    prepared; preparation runs on its own thread, submit never waits, errors surface on submit."""
    prepared = []

    def prepare(frame):
        time.sleep(0.02)
        prepared.append(frame)
        return -frame

    session = SlowSession(0.1)
    with LatestFrameRunner(session, prepare=prepare) as runner:
        start = time.perf_counter()
        for i in range(1, 41):
            runner.submit(i)
            time.sleep(0.01)
        assert time.perf_counter() - start < 1.0  # never waited for prepare or the model
        time.sleep(0.4)
    assert session.seen == [-p for p in prepared[: len(session.seen)]]  # the model sees prepared frames, in order
    assert len(prepared) <= len(session.seen) + 1 < 15  # at most one prepared ahead of the model, not all 40
    assert runner.dropped == 40 - len(prepared) and prepared[-1] > 30  # the newest frames won

    def broken(frame):
        raise ValueError("no detector")

    runner = LatestFrameRunner(SlowSession(), prepare=broken)
    runner.submit(1)
    wait_for_error(runner)
    with pytest.raises(RuntimeError, match="no detector"):
        runner.submit(2)
    runner.close()


def test_next_output_plays_every_frame_of_a_burst_in_order():
    class BurstSession:  # like frames_per_level=4: nothing, nothing, nothing, then 4 frames
        def __init__(self):
            self.n = 0

        def step(self, frame):
            self.n += 1
            return [self.n - 3, self.n - 2, self.n - 1, self.n] if self.n % 4 == 0 else []

    with LatestFrameRunner(BurstSession(), max_outputs=8) as runner:
        for i in range(4):
            runner.submit(i)
            deadline = time.time() + 2
            while runner.processed <= i and time.time() < deadline:
                time.sleep(0.005)
        assert [runner.next_output() for _ in range(5)] == [1, 2, 3, 4, None]
