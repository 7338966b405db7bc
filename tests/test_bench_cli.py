"""`turbonext bench` prints its table and writes a markdown file only when asked (--markdown PATH)."""

import pytest

from turbonext.commands.main import main as turbonext_main


TINY = ["bench", "stream", "--tiny", "--device", "cpu", "--frames", "2", "--warmup", "2", "--window", "4",
        "--frames-per-level", "1", "--baselines"]


def test_bench_prints_the_table_and_writes_no_file_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert turbonext_main(TINY) == 0
    assert "| (c) StreamSession staggered steps=4 window=4 frames_per_level=1" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no BENCHMARKS.md (nor anything else) in the current folder


def test_bench_appends_the_table_where_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("# my notes\n")
    assert turbonext_main(TINY + ["--markdown", "notes.md"]) == 0
    printed = capsys.readouterr().out
    text = (tmp_path / "notes.md").read_text()
    assert text.startswith("# my notes\n") and "| (c) StreamSession staggered steps=4 window=4 frames_per_level=1" in text
    assert "python -m turbonext bench stream --tiny" in text and text.split("\n", 2)[2] in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]


@pytest.mark.parametrize("arch, label", [("sd21", "sd21 architecture"), ("sdxl", "sdxl architecture")])
def test_bench_times_the_other_backbones_with_tiny_components(arch, label, tmp_path, monkeypatch, capsys):
    """`--arch sd21|sdxl`: turbonext on SD2.1 / SDXL with random weights (full size on a GPU; --tiny here), with both
    baselines (SDXL's (a) is diffusers' AnimateDiffSDXLPipeline)."""
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "stream", "--tiny", "--arch", arch, "--device", "cpu", "--frames", "2", "--warmup", "2",
            "--window", "4", "--frames-per-level", "2", "--steps", "2", "--fifo-frames", "1", "--baselines", "a", "b"]
    assert turbonext_main(argv) == 0
    out = capsys.readouterr().out
    assert f"### stream benchmark (tiny, {label}" in out and "64x64" in out
    for row in ("| (a) diffusers AnimateDiff clip", "| (b) literal FIFO loop",
                "| (c) StreamSession staggered steps=2 window=4 frames_per_level=2"):
        assert row in out
