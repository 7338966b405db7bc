"""``turbonext push FOLDER REPO_ID``: upload a pipeline folder (with its model card) to the Hugging Face Hub.

A folder written by ``training/export.py`` (or ``pipe.save_pretrained``) goes up with a turbonext model
card; only configs, tokenizer files, safetensors and the card are uploaded, never pickles. A failed
upload leaves the folder untouched and prints the command to retry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from turbonext.loaders.hub import is_repo_id
from turbonext.loaders.publish import CARD_NAME, load_eval_results, push_or_explain, upload_files, write_card


def cli_main(argv: list[str] | None = None) -> int:
    """``turbonext push FOLDER REPO_ID [--private] [--eval-json RESULT.json ...] [--license ID] [--dry-run]``."""
    parser = argparse.ArgumentParser(prog="turbonext push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a pipeline folder (training/export.py writes one)")
    parser.add_argument("repo_id", help="the Hub model repo, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or your `hf auth login`)")
    parser.add_argument("--eval-json", nargs="+", default=None, metavar="RESULT",
                        help="`turbonext eval --json` results for the card's Evaluation table")
    parser.add_argument("--license", default=None, help="a Hub license id for the card")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the card and list what would be uploaded; touch no network")
    args = parser.parse_args(argv)
    try:
        if not is_repo_id(args.repo_id):
            raise ValueError(f"{args.repo_id!r} is not a Hub repo id: use the form 'owner/name'.")
        if not write_card(args.folder, args.repo_id, load_eval_results(args.eval_json), args.license) and (
                args.eval_json or args.license):
            print(f"{Path(args.folder) / CARD_NAME} was edited by hand: uploaded as it is, without the new "
                  "evaluation / licence.", file=sys.stderr)
        if args.dry_run:
            files = upload_files(args.folder)
            size = sum((Path(args.folder) / f).stat().st_size for f in files)
            print("\n".join(files) + f"\n{len(files)} files, {size / 2**20:.1f} MiB would go to "
                  f"https://huggingface.co/{args.repo_id} (dry run: nothing uploaded)")
            return 0
        return push_or_explain(args.folder, args.repo_id, private=args.private, token=args.token)
    except ValueError as err:
        parser.error(str(err))
