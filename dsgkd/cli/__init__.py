"""The `dsgkd` command: one small module per subcommand, each importing its heavy machinery only when run."""
from dsgkd.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
