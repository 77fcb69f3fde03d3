"""`dsgkd table --reuse OTHER`: a table's next design takes from an earlier table every run and search it would
repeat, and scores those runs on its own test split instead of training them again.

A design change is never re-run on a reported test split, so each new design draws a new one; with 12 seeds and
two pairs a world costs about five hours here, nearly all of it training that the change does not touch (a new
primary analysis touches none; a new wrong-knowledge search only that arm's rows). Nothing a table trains or
searches reads its test split (`pipeline.rescore`), so a run of OTHER is the run this table would train when its
config is this one's with OTHER's folder in place of this table's folder, and every file inside the table that
the config names for training (the training, validation and transfer notes, the mined lexicon) holds the same
bytes in both; the test split is the one thing allowed to differ. Such a run is copied and rescored
(`pipeline.rescore.rescore_run`), a search whose space and trial budget are the same likewise keeps OTHER's
exported best config. A run trained under another redraw floor counts where its recorded draws show the new floor
would have stopped at the same draw (`same_draws`). Anything else trains as usual. The stand-ins must be the same
builds in both tables.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.experiments.table_protocol import saved_protocol
from dsgkd.experiments.table_record import STAND_INS
from dsgkd.storage import atomic_write_text

TABLE = "<table>"  # what either table's folder reads as when two configs are compared
REUSED = "reused.json"  # in a search folder whose best config came from OTHER
REDRAW = ("restart_floor", "restarts")  # `train` fields that decide a trained run's redraws, never a trial's


class Reuse:
    """The earlier table `other` as a source of runs and searches for the table in `out`."""

    def __init__(self, other: Path, out: Path):
        self.other, self.out = Path(other).resolve(), Path(out).resolve()
        if self.other == self.out:
            raise UserError(f"--reuse {other}: the table's own --out; name an earlier table")
        if saved_protocol(self.other) is None:
            raise UserError(f"--reuse {other}: not a table (no protocol.json)")
        self.runs = self.searches = 0
        self._digests: dict[Path, str | None] = {}  # the notes stay as they are for one invocation

    def check_stand_ins(self) -> None:
        """After this table recorded its stand-ins: refuse an OTHER whose runs trained other builds of them."""
        ours, theirs = (_read_json(root / STAND_INS) for root in (self.out, self.other))
        differ = sorted(ref for ref in ours.keys() & theirs.keys() if ours[ref] != theirs[ref])
        if differ:
            raise UserError(f"--reuse {self.other}: trained other builds of {', '.join(differ)} than this table "
                            f"({STAND_INS}); its runs are not this table's runs")

    def source(self, cfg: RunConfig, folder: Path) -> Path | None:
        """OTHER's complete run at `folder`'s place when it trained what `cfg` trains, else None. A run records its
        config resolved (layer map `auto` as the map it stood for), so `cfg` is compared resolved."""
        from dsgkd.pipeline.resolve import resolve_run

        theirs = self.other / Path(folder).resolve().relative_to(self.out)
        if not all((theirs / name).is_file() for name in ("config.yaml", "metrics.json", "student/config.json")):
            return None
        ours, trained = resolve_run(cfg).cfg.model_dump(mode="json"), RunConfig.from_yaml(theirs / "config.yaml")
        draws = json.loads((theirs / "metrics.json").read_text(encoding="utf-8")).get("draws")
        if draws and same_draws(draws, cfg.train.restart_floor, cfg.train.restarts):
            kept = {k: getattr(trained.train, k) for k in REDRAW}  # another floor that would keep the same draw
            ours = {**ours, "train": {**ours["train"], **kept}}
        return theirs if self._same(ours, trained.model_dump(mode="json")) else None

    def search(self, space, folder: Path, trials: int | None) -> bool:
        """Give `folder` (a search not yet run) OTHER's best config when OTHER ran this search: the same space
        and trial budget. The redraw floor is not part of a search (`search.tune`: trials are never redrawn; it
        applies when the exported config trains), so a space that differs only there is the same search, and the
        best config takes this table's floor. Returns whether it did."""
        from dsgkd.search.space import load_space

        folder = Path(folder).resolve()
        theirs = self.other / folder.relative_to(self.out)
        if not ((theirs / "best.yaml").is_file() and (theirs / "space.yaml").is_file()) or \
                saved_protocol(self.other)["trials"] != (trials or space.budget.num_samples):
            return False
        floor = {k: getattr(space.base.train, k) for k in REDRAW if f"train.{k}" not in space.params}
        ours, searched = space.model_dump(mode="json"), load_space(theirs / "space.yaml").model_dump(mode="json")
        for view in (ours, searched):
            view["base"]["train"].update(dict.fromkeys(floor))
        if not self._same(ours, searched):
            return False
        best = _swap(RunConfig.from_yaml(theirs / "best.yaml").model_dump(mode="json", exclude={"provenance"}),
                     f"{self.other}/", f"{self.out}/")
        best["train"].update(floor)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "space.yaml", space.dump_yaml())
        atomic_write_text(folder / REUSED, json.dumps({"from": str(theirs)}, indent=1))
        RunConfig.from_dict(best, source=str(theirs / "best.yaml")).to_yaml(folder / "best.yaml")
        self.searches += 1
        return True

    def record(self) -> dict:
        return {"from": str(self.other), "runs": self.runs, "searches": self.searches}

    def _same(self, ours: dict, theirs: dict) -> bool:
        """Equal once each table's folder reads as TABLE, test split aside, and every training file either names
        inside its table holds the same bytes."""
        ours, theirs = _swap(ours, f"{self.out}/", f"{TABLE}/"), _swap(theirs, f"{self.other}/", f"{TABLE}/")
        for view in (ours, theirs):
            _drop_test(view)
        if ours != theirs:
            return False
        return all(self._digest(self.out / rel) == self._digest(self.other / rel) for rel in _table_files(ours))

    def _digest(self, path: Path) -> str | None:
        if path not in self._digests:
            self._digests[path] = _digest(path)
        return self._digests[path]


def same_draws(draws: list[dict], floor: float, restarts: int) -> bool:
    """Whether a run that made `draws` (`pipeline.redraw`: each draw's validation AUROC, in order, the best kept)
    would have made exactly these draws under `floor` and `restarts`: it stops at the first draw at or above the
    floor, or after `restarts` redraws. Each draw's seed follows from the run's seed alone, so the same draws give
    the same kept student, and a design that moves the floor retrains only the runs whose draws it would change."""
    allowed = restarts + 1 if floor > 0 else 1
    for i, draw in enumerate(draws[:allowed], 1):
        if draw["val_auroc"] is None or draw["val_auroc"] >= floor or i == allowed:
            return i == len(draws)
    return False  # it stopped where the new floor would draw again


def _swap(value, old: str, new: str):
    """`value` (a JSON-like dump) with `old` replaced by `new` in every string."""
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def _drop_test(view: dict) -> None:
    """The test split's path, wherever a config (or a search space's base) names it."""
    for holder in (view, view.get("base") or {}):
        if isinstance(holder.get("data"), dict):
            holder["data"].pop("test_path", None)
        holder.pop("provenance", None)


def _table_files(value) -> set[str]:
    """Every path inside the table a dump names (a data file, `lexicon:<file>`), relative to the table."""
    if isinstance(value, dict):
        return set().union(*(_table_files(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_table_files(v) for v in value))
    if isinstance(value, str) and f"{TABLE}/" in value:
        return {value[value.index(f"{TABLE}/") + len(TABLE) + 1:]}
    return set()


def _digest(path: Path) -> str | None:
    """The bytes of a file (every file below a folder, by name), None when it is missing."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
