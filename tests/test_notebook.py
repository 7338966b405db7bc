"""examples/quickstart.ipynb runs top to bottom in a real kernel (offline, CPU) and shows its results."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient


NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow  # a real kernel renders a clip and a stream: 9-19 s on 2 cores
def test_quickstart_notebook_runs_and_shows_the_clip_and_the_stream(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel inherits this process's environment (HF_HUB_OFFLINE=1 from conftest) and runs in tmp_path
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [mime for o in outputs if o.output_type in ("display_data", "update_display_data") for mime in o.data]
    assert "image/gif" in shown and "image/png" in shown  # the clip as a GIF, the photo / frames as images
    printed = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "16 frames streamed" in printed and "p95_latency_ms" in printed
    assert (tmp_path / "turbonext_clip.gif").stat().st_size > 10_000
