"""The `dsgkd` command. Bad input exits 2 with one line naming the file, field or row, and so does a disk that is
full, read-only or not the user's; a run whose loss became NaN or inf exits 3 with one line saying where, which
loss part, and what to lower. A command runs under a umask that makes what it writes owner-only
(`dsgkd.storage.private_umask`; `DSGKD_GROUP_READABLE=1` lets the group read).

Every subcommand module is light (argparse, registries, constants); what a command needs (torch, Ray,
Optuna, pandas) is imported by its `run`, so `dsgkd --help` and `dsgkd train --help` load none of it.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import warnings

from dsgkd.cli import (analyze, demo, evaluate, export, export_onnx, lexicon, predict, search, synth, table,
                       table_record, train)
from dsgkd.errors import NonFiniteLossError, UserError
from dsgkd.storage import private_umask

COMMANDS = (synth, lexicon, train, evaluate, predict, export_onnx, search, analyze, export, demo, table,
            table_record)


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
    previous_umask = os.umask(0o077)
    os.umask(private_umask(previous_umask))  # what Ray, Optuna and transformers write is private too
    try:
        return args.func(args)
    except OSError as e:
        line = storage_error(e)
        if line is None:
            raise
        print(f"dsgkd {args.command}: error: {line}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"dsgkd {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"dsgkd {args.command}: error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"dsgkd {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        os.umask(previous_umask)


STORAGE_ERRORS = {
    errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied", errno.EPERM: "not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def storage_error(e: OSError) -> str | None:
    """One line for a disk that is full, read-only or not ours, or a path through a file (also when a Ray task
    raised it); None for any other OSError, a bug that keeps its traceback."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, OSError):
        e = cause
    what = STORAGE_ERRORS.get(e.errno)
    if what is None:
        return None
    where = f" ({e.filename})" if e.filename else ""
    return f"{what}{where}; the output was not written (free space, or write somewhere writable)"


if __name__ == "__main__":
    sys.exit(main())
