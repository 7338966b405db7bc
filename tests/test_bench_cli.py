"""`turbonext bench` prints its table and writes a markdown file only when asked (--markdown PATH)."""

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
