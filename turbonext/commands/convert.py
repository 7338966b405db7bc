"""``turbonext convert {animate-anyone,musepose,rain} SRC OUT``: a public pose-transfer checkpoint -> a
TurboNextPipeline folder (safetensors, configs, a model card), key for key.

SRC is a local folder holding the family's files (reference_unet.pth, denoising_unet.pth or motion_unet.pth,
motion_module.pth, pose_guider.pth) or a Hub repo id (only those files are downloaded). ``.pth`` files are
read with ``torch.load(..., weights_only=True)``: a file that needs arbitrary objects unpickled is refused.
The mapping report lists, per file, the keys mapped, unused and missing; anything but a complete mapping
exits with status 1 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys

from turbonext.converters.build import ConversionError, convert_checkpoint
from turbonext.converters.checkpoint_files import UnsafeCheckpointError
from turbonext.converters.sources import DEFAULT_IMAGE_ENCODER, DEFAULT_VAE, SOURCES


def cli_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turbonext convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", choices=sorted(SOURCES), help="the checkpoint family")
    parser.add_argument("src", nargs="?", default=None,
                        help="a folder with its files, or a Hub repo id (default: the family's Hub repo)")
    parser.add_argument("out", help="the pipeline folder to write")
    parser.add_argument("--image-encoder", default=DEFAULT_IMAGE_ENCODER,
                        help="CLIP vision encoder: a repo/folder with image_encoder/ in it, or the encoder's folder")
    parser.add_argument("--vae", default=DEFAULT_VAE, help="the SD VAE (encodes the reference; decodes too by default)")
    parser.add_argument("--tiny-vae", default=None, help="decode with this TAESD (e.g. madebyollin/taesd) instead")
    parser.add_argument("--base", default=None,
                        help="accepted for compatibility; the UNet configs are SD1.5's and every weight comes from SRC")
    parser.add_argument("--dtype", choices=("fp16", "fp32", "bf16"), default="fp16")
    parser.add_argument("--local-files-only", action="store_true", help="use the Hub cache only, no downloads")
    args = parser.parse_args(_with_default_src(argv))
    try:
        convert_checkpoint(args.source, args.src or SOURCES[args.source].hub_repo, args.out,
                           image_encoder=args.image_encoder, vae=args.vae, tiny_vae=args.tiny_vae, dtype=args.dtype,
                           local_files_only=args.local_files_only)
    except ConversionError:
        print(f"turbonext convert: {args.source} from {args.src}: nothing written; the keys do not map exactly "
              "(report above).", file=sys.stderr)
        return 1
    except (UnsafeCheckpointError, FileNotFoundError, ValueError) as err:
        print(f"turbonext convert: {err}", file=sys.stderr)
        return 1
    return 0


def _with_default_src(argv: list[str] | None) -> list[str] | None:
    """``convert rain OUT`` (two positionals) means SRC = the family's Hub repo."""
    if argv is None:
        argv = sys.argv[1:]
    positionals = [a for a in argv if not a.startswith("-")]
    flags_with_values = {"--image-encoder", "--vae", "--tiny-vae", "--base", "--dtype"}
    values = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in flags_with_values}
    positionals = [a for a in positionals if a not in values]
    if len(positionals) == 2 and positionals[0] in SOURCES:
        index = argv.index(positionals[1])
        return argv[:index] + [SOURCES[positionals[0]].hub_repo] + argv[index:]
    return argv
