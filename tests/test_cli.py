"""Command-line jobs: generate (synthetic demo inputs, pose folders, streaming, errors) and bench --tiny."""

import functools
import json

import numpy as np
import pytest
from conftest import make_pose_frames, make_reference
from PIL import Image

from turbonext.commands.main import main as turbonext_main


@pytest.fixture(scope="module")
def saved_pipe(tiny_pipe_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tiny_pipe_factory().save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def no_pose_detector(monkeypatch):
    """generate finds a reference's person without a detector backend here (fast, and the same on every machine)."""

    def unavailable(*args, **kwargs):
        raise ImportError("no pose detector in these tests")

    monkeypatch.setattr("turbonext.commands.generate.get_detector", unavailable)


def test_generate_on_synthetic_inputs_writes_mp4_gif_and_frames(saved_pipe, tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    code = turbonext_main(["generate", "--model", saved_pipe, "--out", str(out), "--max-frames", "5", "--steps", "1",
                           "--device", "cpu"])
    assert code == 0
    assert out.stat().st_size > 0 and out.with_suffix(".gif").stat().st_size > 0
    frames = sorted((tmp_path / "demo").glob("*.png"))
    assert len(frames) == 5 and Image.open(frames[0]).size == (64, 64)  # the tiny model's native size
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.size == (64 * 4, 64) and gif.n_frames == 5  # reference | pose | result | ground truth
    assert "reference | pose | result | ground truth" in capsys.readouterr().out


def test_generate_with_a_users_photo_has_no_ground_truth_panel_and_crops_it_unstretched(saved_pipe, tmp_path, capsys):
    """A user's photo on the built-in synthetic motion: reference | pose | result (the synthetic frames show another
    person, so no "ground truth"), the photo cropped square around its figure and said so, not stretched."""
    photo = np.zeros((200, 300, 3), np.uint8)
    photo[60:140, 200:240] = (230, 40, 40)  # a figure 40 wide, 80 tall, right of centre
    Image.fromarray(photo).save(tmp_path / "me.png")
    out = tmp_path / "mine.mp4"
    assert turbonext_main(["generate", "--model", saved_pipe, "--reference", str(tmp_path / "me.png"), "--out", str(out),
                           "--max-frames", "3", "--steps", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "reference | pose | result" in printed and "ground truth" not in printed
    assert ("reference 300x200 cropped to the figure on its plain background (164,44,276,156) and resized to 64x64."
            in printed)
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.size == (64 * 3, 64) and gif.n_frames == 3  # three panels
    reference_panel = np.asarray(gif.convert("RGB"))[:, :64].astype(int)
    ys, xs = np.nonzero(np.abs(reference_panel - (230, 40, 40)).max(axis=2) < 60)
    width, height = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
    assert abs(width - 40 * 64 / 112) <= 2 and abs(height - 80 * 64 / 112) <= 2  # 22.9 x 45.7: the photo's proportions


def spy_on_stream_sessions(monkeypatch) -> list:
    """Every frame that a StreamSession made by ``TurboNextPipeline.stream`` returns, in order."""
    from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline
    from turbonext.streaming.session import StreamSession

    produced = []
    original = TurboNextPipeline.stream

    def stream(self, *args, **kwargs):
        session = original(self, *args, **kwargs)
        assert isinstance(session, StreamSession)
        step, flush = session.step, session.flush

        def step_spy(frame):
            out = step(frame)
            produced.extend(out)
            return out

        def flush_spy():
            out = flush()
            produced.extend(out)
            return out

        session.step, session.flush = step_spy, flush_spy
        return session

    monkeypatch.setattr(TurboNextPipeline, "stream", stream)
    return produced


def written_frames(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_generate_from_a_pose_folder_with_streaming(saved_pipe, tmp_path, monkeypatch):
    """--stream renders with a StreamSession (pipelined denoising) and writes exactly its frames; without it
    the clip path renders different frames. A --stream flag that were ignored would fail here."""
    poses = tmp_path / "poses"
    poses.mkdir()
    for i, p in enumerate(make_pose_frames(6)):
        Image.fromarray(p).save(poses / f"{i:03d}.png")
    Image.fromarray(make_reference()).save(tmp_path / "me.png")
    produced = spy_on_stream_sessions(monkeypatch)
    args = ["generate", "--model", saved_pipe, "--poses", str(poses), "--reference", str(tmp_path / "me.png"),
            "--steps", "2", "--device", "cpu"]
    assert turbonext_main(args + ["--out", str(tmp_path / "stream.mp4"), "--stream"]) == 0
    streamed = written_frames(tmp_path / "stream")
    assert len(streamed) == 6 and len(produced) == 6  # the session's frames, all of them, and no others
    for png, frame in zip(streamed, produced):
        np.testing.assert_array_equal(png, np.asarray(frame))
    assert turbonext_main(args + ["--out", str(tmp_path / "clip.mp4")]) == 0
    clip = written_frames(tmp_path / "clip")
    assert len(clip) == 6 and len(produced) == 6  # the clip path does not stream
    # and renders other frames (measured: 2.3 levels of 255 apart on average)
    assert np.abs(np.stack(clip).astype(float) - np.stack(streamed)).mean() > 1.0


def _pose_folder(folder, num_frames: int):
    folder.mkdir()
    frames = make_pose_frames(8)
    for i in range(num_frames):
        Image.fromarray(frames[i % 8]).save(folder / f"{i:05d}.png")
    return folder


def test_generate_long_video_chain_or_blend(saved_pipe, tmp_path, capsys, monkeypatch):
    """--long-video and --max-frames reach the pipeline: a clip longer than one window (20 frames > 16) is rendered
    chained or blended as asked, and without the flag as the pipeline's default (blend); --help says what each does."""
    from turbonext.pipelines.pipeline_turbonext import TurboNextPipeline

    calls = []
    original = TurboNextPipeline.__call__

    @functools.wraps(original)  # (the command reads the pipeline's defaults from its signature)
    def call(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TurboNextPipeline, "__call__", call)
    poses = _pose_folder(tmp_path / "poses", 20)
    Image.fromarray(make_reference()).save(tmp_path / "me.png")
    args = ["generate", "--model", saved_pipe, "--poses", str(poses), "--reference", str(tmp_path / "me.png"),
            "--steps", "1", "--device", "cpu", "--max-frames", "20"]
    clips = {}
    for name, extra in [("chain", ["--long-video", "chain"]), ("blend", ["--long-video", "blend"]), ("default", [])]:
        assert turbonext_main(args + extra + ["--out", str(tmp_path / f"{name}.mp4")]) == 0
        clips[name] = np.stack(written_frames(tmp_path / name))
        assert len(clips[name]) == 20
    assert [(c.get("long_video"), c["max_frames"], len(c["pose_images"])) for c in calls] == [
        ("chain", 20, 20), ("blend", 20, 20), (None, 20, 20)]  # None: the pipeline's own default
    assert not np.array_equal(clips["chain"], clips["blend"])
    np.testing.assert_array_equal(clips["default"], clips["blend"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        turbonext_main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--long-video {blend,chain}" in text and "(default: the pipeline's, blend; not used with --stream)" in text
    assert "blend: overlapping windows" in text and "chain: window after window" in text
    with pytest.raises(SystemExit):
        turbonext_main(["generate", "--long-video", "stitch"])
    assert turbonext_main(["generate", "--model", saved_pipe, "--max-frames", "0", "--device", "cpu"]) == 2
    assert "--max-frames must be at least 1; got 0." in capsys.readouterr().err


@pytest.mark.slow  # ~15 s on 2 cores: 1030 frames rendered and written
def test_generate_renders_more_frames_than_the_pipelines_default_limit(saved_pipe, tmp_path):
    """--max-frames reaches the pipeline's max_frames: a clip longer than its default limit (1024) is rendered, not
    refused with a message about a Python argument the command line does not have."""
    from turbonext.pipelines.pipeline_turbonext import MAX_FRAMES

    count = MAX_FRAMES + 6
    poses = _pose_folder(tmp_path / "poses", count)
    Image.fromarray(make_reference()).save(tmp_path / "me.png")
    assert turbonext_main(["generate", "--model", saved_pipe, "--poses", str(poses), "--reference",
                           str(tmp_path / "me.png"), "--steps", "1", "--device", "cpu", "--max-frames", str(count),
                           "--long-video", "chain", "--out", str(tmp_path / "long.mp4")]) == 0
    assert len(list((tmp_path / "long").glob("*.png"))) == count


def test_generate_errors_are_clear(saved_pipe, tmp_path, capsys):
    assert turbonext_main(["generate", "--model", str(tmp_path / "nope"), "--device", "cpu"]) == 2
    assert "not an existing folder" in capsys.readouterr().err
    poses = tmp_path / "empty"
    poses.mkdir()
    assert turbonext_main(["generate", "--model", saved_pipe, "--poses", str(poses), "--device", "cpu"]) == 2
    (tmp_path / "bad.png").write_bytes(b"not a png")
    Image.fromarray(make_pose_frames(1)[0]).save(poses / "0.png")
    assert turbonext_main(["generate", "--model", saved_pipe, "--poses", str(poses), "--reference",
                           str(tmp_path / "bad.png"), "--device", "cpu"]) == 2
    assert "cannot read the reference image" in capsys.readouterr().err
    # an output path that is not an .mp4 is refused before the render (it used to fail in the encoder after it)
    assert turbonext_main(["generate", "--model", saved_pipe, "--out", str(tmp_path / "clip"), "--device", "cpu"]) == 2
    assert "--out must be an .mp4" in capsys.readouterr().err and not (tmp_path / "clip").exists()


def test_bench_tiny_cpu_reports_all_three_rows(tmp_path):
    js, md = tmp_path / "bench.json", tmp_path / "BENCH.md"
    code = turbonext_main(["bench", "stream", "--tiny", "--device", "cpu", "--frames", "8", "--warmup", "16",
                           "--frames-per-level", "4", "--fifo-frames", "1", "--profile", "8", "--json", str(js),
                           "--markdown", str(md), "--steps", "4", "2"])
    assert code == 0
    result = json.loads(js.read_text())
    names = [r["name"] for r in result["rows"]]
    assert names[0].startswith("(a)") and names[1].startswith("(b)") and names[2].startswith("(c)")
    assert [r.get("steps") for r in result["rows"]] == [None, None, 4, 2] and "steps=2 window=16" in names[3]
    stream = result["rows"][2]
    assert result["ratios"]["vs (b)"] == pytest.approx(stream["fps"] / result["rows"][1]["fps"])  # 4-step rows only
    assert stream["frames_measured"] == 8 and stream["fps"] > 0 and stream["p95_latency_ms"] > 0
    assert set(result["ratios"]) == {"vs (a)", "vs (b)"}
    profile = stream["profile"]
    assert profile["ticks"] == 2 and profile["unet_ms"] > 0 and profile["tick_ms"] >= profile["unet_ms"]
    text = md.read_text()
    assert "python -m turbonext bench stream --tiny" in text and "| (c) StreamSession" in text
    assert "Where a tick goes" in text
    assert stream["cudagraph_skips"] == 0 and "NOT captured" not in text


def test_bench_times_a_saved_model_at_its_native_size(saved_pipe, tmp_path):
    js = tmp_path / "bench.json"
    code = turbonext_main(["bench", "stream", "--model", saved_pipe, "--channels-last", "--device", "cpu", "--frames", "4",
                           "--warmup", "8", "--window", "4", "--frames-per-level", "1", "--baselines", "--json", str(js),
                           "--markdown", ""])
    assert code == 0
    result = json.loads(js.read_text())
    assert result["size"] == 64 and [r["window"] for r in result["rows"]] == [4] and result["rows"][0]["fps"] > 0
    assert result["title"].startswith(f"stream benchmark (model {saved_pipe}, VAE channels_last")
    with pytest.raises(SystemExit):
        turbonext_main(["bench", "stream", "--model", saved_pipe, "--tiny"])


def test_bench_live_writes_its_table(saved_pipe, tmp_path, monkeypatch):
    from test_live import FakeDetector

    monkeypatch.setattr("turbonext.commands.bench.get_detector", lambda name, video_mode=False: FakeDetector())
    js, md = tmp_path / "live.json", tmp_path / "BENCH.md"
    assert turbonext_main(["bench", "live", "--model", saved_pipe, "--device", "cpu", "--window", "4", "8",
                           "--frames-per-level", "1", "--steps", "2", "--seconds", "1", "--warmup-seconds", "0.3",
                           "--input-fps", "20", "--json", str(js), "--markdown", str(md)]) == 0
    rows = json.loads(js.read_text())["rows"]
    assert [r["name"].split(" steps")[0] for r in rows] == ["live uniform window=4 frames_per_level=1",
                                                            "live uniform window=8 frames_per_level=1"]
    text = md.read_text()
    assert "live benchmark (webcam path)" in text and "python -m turbonext bench live --model" in text
    assert text.count("| live uniform window=") == 2


def test_bench_table_flags_graph_modes_whose_cuda_graphs_were_skipped():
    from turbonext.benchmarks.stream import markdown_table

    row = dict(name="(c) StreamSession window=16 frames_per_level=4 compile=reduce-overhead", compile="reduce-overhead",
               ms_per_frame=20.0, fps=50.0, cudagraph_skips=1)
    result = dict(title="t", command="c", device="d", dtype="fp16", size=512, steps=[4], torch="x", date="y", rows=[row])
    assert "CUDA graphs were NOT captured" in markdown_table(result) and row["name"] in markdown_table(result)
    row["cudagraph_skips"] = 0
    assert "NOT captured" not in markdown_table(result)


def test_cli_help_and_unknown_command(capsys):
    assert turbonext_main([]) == 0 and "generate" in capsys.readouterr().out
    assert turbonext_main(["frobnicate"]) == 2


def test_generate_makes_the_person_from_a_prompt_and_stacks_a_style_lora(saved_pipe, tiny_hub, tmp_path, capsys):
    from conftest import write_tiny_lora

    from turbonext.commands.generate import _style_lora_spec

    lora = write_tiny_lora(f"{tiny_hub['base']}/unet", tmp_path / "style", seed=4)
    out = tmp_path / "text.mp4"
    code = turbonext_main(["generate", "--model", saved_pipe, "--out", str(out), "--max-frames", "3", "--steps", "1",
                           "--device", "cpu", "--prompt", "a dancer in a red dress", "--style-lora", f"{lora}:0.5"])
    printed = capsys.readouterr().out
    assert code == 0 and "Made the person from the prompt" in printed and "at weight 0.5" in printed
    assert Image.open(tmp_path / "text_reference.png").size == (64, 64)
    assert "ground truth" not in printed  # the made person has none
    assert _style_lora_spec("owner/repo") == ("owner/repo", 0.8) and _style_lora_spec("C:/x.safetensors:1") == (
        "C:/x.safetensors", 1.0)


def test_generate_writes_h264_at_24_fps_by_default_or_the_chosen_rate(saved_pipe, tmp_path, capsys):
    import imageio_ffmpeg

    def meta(path):
        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            return next(reader)
        finally:
            reader.close()

    for fps, argv in [(24, []), (8, ["--fps", "8"])]:
        out = tmp_path / f"clip{fps}.mp4"
        assert turbonext_main(["generate", "--model", saved_pipe, "--out", str(out), "--max-frames", "3", "--steps", "1",
                               "--device", "cpu", *argv]) == 0
        info = meta(out)
        assert info["codec"] == "h264" and info["fps"] == fps and info["pix_fmt"].startswith("yuv420p")
        gif = Image.open(out.with_suffix(".gif"))
        assert gif.n_frames == 3 and gif.info["duration"] == pytest.approx(1000 / fps, abs=10)  # GIF: 1/100 s steps
    assert turbonext_main(["generate", "--model", saved_pipe, "--out", str(tmp_path / "x.mp4"), "--fps", "0",
                           "--device", "cpu"]) == 2
    assert "--fps must be more than 0" in capsys.readouterr().err


def test_generate_starts_the_motion_from_the_made_persons_pose(saved_pipe, tmp_path, capsys, monkeypatch):
    from test_text_identity import StubDetector, standing_person

    from turbonext.pose.render import render_pose

    person, found = standing_person(), []
    monkeypatch.setattr("turbonext.commands.generate.get_detector",
                        lambda *a, **k: found.append(StubDetector([person])) or found[-1])
    base = ["generate", "--model", saved_pipe, "--max-frames", "3", "--steps", "1", "--device", "cpu", "--prompt",
            "a dancer in a red dress"]
    out = tmp_path / "start.mp4"
    assert turbonext_main([*base, "--out", str(out), "--start-from-made-pose"]) == 0
    printed = capsys.readouterr().out
    assert "starts from the made person's pose" in printed and found[0].calls == 1
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.n_frames == 4 and len(list((tmp_path / "start").glob("*.png"))) == 4  # one more frame, the first
    first_pose = np.asarray(gif.convert("RGB"))[:, 64:128]  # reference | pose | result
    expected = np.asarray(render_pose([person], size=(64, 64)))
    assert np.abs(first_pose.astype(int) - expected).mean() < 8  # (GIF palette)
    found.clear()
    monkeypatch.setattr(StubDetector, "detect", lambda self, image: [])  # nobody in the made image
    assert turbonext_main([*base, "--out", str(tmp_path / "none.mp4"), "--start-from-made-pose"]) == 0
    assert "No person was found in the made image" in capsys.readouterr().out
    assert len(list((tmp_path / "none").glob("*.png"))) == 3


def test_start_from_made_pose_needs_a_prompt(saved_pipe, tmp_path, capsys):
    code = turbonext_main(["generate", "--model", saved_pipe, "--out", str(tmp_path / "x.mp4"), "--device", "cpu",
                           "--start-from-made-pose"])
    assert code == 2 and "--start-from-made-pose needs --prompt" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
