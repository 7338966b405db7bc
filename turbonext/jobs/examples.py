"""The app's example inputs, all available offline: a public-domain photo shipped with the package
(``turbonext/demo/examples/``, licence in ``LICENSE.md`` there) and a synthetic figure the package draws
itself; the driving side is a built-in motion (:func:`~turbonext.jobs.driving_inputs.builtin_motion_poses`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from turbonext.jobs.driving_inputs import DEMO_DATASET_IDENTITIES
from turbonext.synthetic.dataset import identity_seed, make_sequence
from turbonext.synthetic.figure import Identity


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "demo" / "examples"
PHOTO = EXAMPLES_DIR / "astronaut.jpg"  # public domain (LICENSE.md next to it)


def synthetic_reference(folder: str | Path | None = None, size: int = 256) -> Path:
    """A synthetic figure (an identity the demo model never trained on) as a PNG, drawn once into ``folder``
    (default: ``turbonext-examples`` in the system's temporary folder) and reused afterwards."""
    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "turbonext-examples"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synthetic_figure_{size}.png"
    if not path.is_file():
        ident = Identity.random(identity_seed(0, DEMO_DATASET_IDENTITIES - 1))
        frames, _, _ = make_sequence(ident, "wave", num_frames=1, size=size, seed=1)
        staging = folder / f".{path.name}.{os.getpid()}.part"
        frames[0].save(staging, format="PNG")
        os.replace(staging, path)  # complete before its name exists (several app processes may start at once)
    return path


def example_files(folder: str | Path | None = None) -> dict[str, Path]:
    """The example reference photos by label: the shipped public-domain photo (when the package has it) and
    the synthetic figure."""
    files = {"synthetic figure": synthetic_reference(folder)}
    if PHOTO.is_file():
        files["astronaut photo (public domain)"] = PHOTO
    return files
