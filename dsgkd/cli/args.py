"""Argument parsing several subcommands share."""
from __future__ import annotations

from typing import Any

from dsgkd.errors import UserError


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """`0,1,2` → [0, 1, 2]; one line naming the flag otherwise."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected comma-separated integers like 0,1,2") from None
    if not seeds:
        raise UserError(f"{flag} {text!r}: expected comma-separated integers like 0,1,2")
    return seeds


def parse_sets(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """`KEY=VALUE` items → {KEY: VALUE read as YAML}, so numbers, booleans and null keep their type."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"{flag} {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
