"""The `dsgkd` command. Bad input exits 2 with one line naming the file, field or row; a run whose loss
became NaN or inf exits 3 with one line saying where, which loss part, and what to lower.

Every subcommand module is light (argparse, registries, constants); what a command needs (torch, Ray,
Optuna, pandas) is imported by its `run`, so `dsgkd --help` and `dsgkd train --help` load none of it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from dsgkd.cli import analyze, demo, evaluate, export, export_onnx, lexicon, predict, search, synth, table, train
from dsgkd.errors import NonFiniteLossError, UserError

COMMANDS = (synth, lexicon, train, evaluate, predict, export_onnx, search, analyze, export, demo, table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsgkd", description="DSG-KD: distil a domain teacher into a general "
                                     "multilingual student on code-switched clinical notes, and search its settings.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import huggingface_hub.utils
    import transformers

    transformers.logging.set_verbosity_error()  # load reports about fresh classifier heads are expected here
    transformers.logging.disable_progress_bar()  # its per-model "Loading weights" / "Writing model shards" bars,
    huggingface_hub.utils.enable_progress_bars()  # but a hub download (minutes, once per model) keeps its own
    try:
        return args.func(args)
    except UserError as e:
        print(f"dsgkd {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"dsgkd {args.command}: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"dsgkd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
