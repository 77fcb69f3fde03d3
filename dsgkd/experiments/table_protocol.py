"""The table's frozen protocol: what a reported number depends on, written before the first run and checked on
every later one, so figures from two designs can never end up side by side in one OUT.

The protocol is fixed before anything is trained (OUT/protocol.json) and copied into results.json: the world,
its generator seeds, the split sizes, the training seeds, the search budget, the exact search space (by
content hash) and the pre-declared primary comparison. A resumed run, a run adding pairs or a learning curve,
and `--render-only` all read it back and refuse, in one line, when theirs differs. The code that produced the
figures (dsgkd version, git commit) is recorded but not compared: a fix that changes no figure must not lock
an OUT, and the commit says which code a reader should look at.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from dsgkd import __version__
from dsgkd.errors import UserError
from dsgkd.storage import atomic_write_text

DEFAULT_WORLD = "default"
# The published table's pairs: the two whose student passes the baseline bar on validation (2026-12-04, default
# world, design seeds, KD-off, seed 0: xlmr-tiny val AUROC 0.768 against the n-gram reference's 0.781;
# kobert-tiny 0.707, a control a gain over which would prove nothing). `--pairs all` adds the kobert-tiny pairs.
DEFAULT_PAIRS = ("kmbert-tiny>xlmr-tiny", "biobert-tiny>xlmr-tiny")
PROTOCOL_FILE = "protocol.json"
RECORDED_ONLY = ("code",)  # recorded for the reader, not part of what must match


def code_version() -> dict[str, str | None]:
    """dsgkd's version and, when the package sits in a git work tree, `git describe --always --dirty`."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "-C", str(here), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10, check=False)
        commit = (done.stdout.strip() or None) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    return {"dsgkd_version": __version__, "commit": commit}


def make_protocol(*, world: str | None, data_seeds: dict[str, int], sizes: dict[str, int], seeds: list[int],
                  trials: int, space_path: Path, primary: str) -> dict:
    return {"world": world or DEFAULT_WORLD, "data_seeds": dict(data_seeds), "sizes": dict(sizes),
            "seeds": list(seeds), "trials": int(trials), "space": Path(space_path).name,
            "space_sha256": hashlib.sha256(Path(space_path).read_bytes()).hexdigest(),
            "primary": primary, "code": code_version()}


def _compared(protocol: dict) -> dict:
    return {k: v for k, v in protocol.items() if k not in RECORDED_ONLY}


def differences(a: dict, b: dict) -> list[str]:
    """The fields (besides the recorded code version) in which two protocols differ."""
    a, b = _compared(a), _compared(b)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def saved_protocol(out: Path) -> dict | None:
    path = out / PROTOCOL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def check_protocol(out: Path, protocol: dict) -> None:
    """Refuse an OUT whose figures were made under another protocol (or before protocols were recorded)."""
    saved = saved_protocol(out)
    if saved is None:
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"{out}: holds files but no {PROTOCOL_FILE} (an older table, or not a table); "
                            "use a new --out")
        return
    diff = differences(saved, protocol)
    if diff:
        shown = ", ".join(f"{k} {saved.get(k)!r} → {protocol.get(k)!r}" for k in diff)
        raise UserError(f"{out}: was run under another protocol ({shown}); use a new --out")


def record_protocol(out: Path, protocol: dict) -> None:
    """Write OUT/protocol.json on the first run only: the code version kept is the one that started it."""
    if saved_protocol(out) is None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / PROTOCOL_FILE, json.dumps(protocol, indent=1))


def check_results(out: Path, results: dict) -> None:
    """`--render-only` and merging: results.json must carry the protocol OUT was started under."""
    saved = saved_protocol(out)
    if "protocol" not in results or saved is None:
        raise UserError(f"{out / 'results.json'}: no protocol recorded (an older table); re-run it into a new --out")
    diff = differences(saved, results["protocol"])
    if diff:
        raise UserError(f"{out / 'results.json'}: made under another protocol than {out / PROTOCOL_FILE} "
                        f"(differs in {', '.join(diff)}); refusing to render or merge it")


def detectable(power: dict) -> str:
    """The declared power in words: what the primary comparison can detect at its seeds."""
    if power["mdd_80"] == float("inf"):
        return "can detect nothing (the sign-flip test cannot reach p < 0.05)"
    return f"detects {power['mdd_80']:.3f} test AUROC with 80% power"


def preflight(data: dict[str, str], world: str | None, n_seeds: int) -> dict:
    """What the table states before anything trains, in results.json: the headroom knowledge has on these notes
    (logistic oracles fitted on train, scored on validation: nothing trains, the test split stays unread) and the
    smallest primary difference its seeds can detect at 80% power. A positive-profile world whose oracle knowing
    held-out terms' severity does not beat the one knowing only what labels teach (seen terms) by 0.10 is not a
    positive control: stop before hours of training say nothing."""
    from dsgkd.data.headroom import HEADROOM_MIN, headroom_of_files
    from dsgkd.data.world import get_world
    from dsgkd.experiments.table_stats import planned_power

    w = get_world(world or DEFAULT_WORLD)
    room = headroom_of_files({"train": data["train"], "test": data["val"]}, w)
    power = planned_power(n_seeds)
    print(f"==> headroom on validation ({w.name}): knowing held-out terms' severity adds "
          f"{room['gap_over_seen_terms']:+.3f} AUROC over knowing the seen terms, {room['gap']:+.3f} over prose "
          f"and vitals", flush=True)
    print(f"==> declared power: the primary comparison {detectable(power)} at {n_seeds} seeds (SD "
          f"{power['planned_sd_paired']}; {power['seeds_for_goal']} seeds reach {power['mdd_goal']})", flush=True)
    if w.profile.name == "positive" and room["gap_over_seen_terms"] < HEADROOM_MIN:
        raise UserError(f"world {w.name}: no headroom for knowledge (oracle gap {room['gap_over_seen_terms']:+.3f} "
                        f"< {HEADROOM_MIN}); a positive control must have it")
    return {"headroom": room, "power": power}
