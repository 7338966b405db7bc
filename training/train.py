"""Train TurboNext: ``python training/train.py --config training/configs/<name>.yaml [key=value ...]``.

Multi-GPU / mixed precision through accelerate: ``accelerate launch training/train.py --config ...``.
Resume: ``--resume latest`` (or ``resume_from_checkpoint=<output_dir>/checkpoint-N``).
All the logic lives in :mod:`turbonext.trainer.loop`; this file is only the entry point.
"""

import sys

from turbonext.trainer.loop import cli_main


if __name__ == "__main__":
    sys.exit(cli_main())
