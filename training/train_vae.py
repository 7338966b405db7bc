"""Train a tiny TAESD-style autoencoder on dataset frames (for the synthetic demo model).

``python training/train_vae.py --dataset-dir data/synthetic --out data/synthetic_taesd --max-minutes 5``;
then set ``tiny_vae: data/synthetic_taesd`` and ``encode_with_sd_vae: false`` in the training config.
See :mod:`turbonext.trainer.vae`.
"""

import sys

from turbonext.trainer.vae import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
