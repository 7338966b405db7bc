"""Copy a pipeline folder, its ReferenceNet replaced by its main UNet's spatial weights:

    python training/init_reference_net.py PIPELINE_DIR OUT_DIR

then train from OUT_DIR (``init_pipeline: OUT_DIR``). See
:func:`turbonext.trainer.trainable.copy_unet_into_reference_net` for why.
"""

import argparse
import sys

from turbonext import TurboNextPipeline
from turbonext.trainer.trainable import copy_unet_into_reference_net


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", help="a pipeline folder (TurboNextPipeline.from_pretrained)")
    parser.add_argument("out", help="where the copy is written")
    args = parser.parse_args(argv)
    pipe = TurboNextPipeline.from_pretrained(args.pipeline)
    copied = copy_unet_into_reference_net(pipe)
    pipe.save_pretrained(args.out)
    print(f"wrote {args.out}: its ReferenceNet holds the main UNet's {copied} spatial tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
