"""Export a checkpoint as a pipeline folder: ``python training/export.py CHECKPOINT OUT_DIR [--lcm-lora REPO]``.

The folder loads with ``TurboNextPipeline.from_pretrained(OUT_DIR)``; see :mod:`turbonext.trainer.export`.
"""

import sys

from turbonext.trainer.export import cli_main


if __name__ == "__main__":
    sys.exit(cli_main())
