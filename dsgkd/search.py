"""`dsgkd search`: Ray Tune + Optuna (define-by-run) + ASHA over DSG-KD configs, each trial a Ray Train DDP run.

Wiring (DESIGN §5): a Tune trial is a small driver that fits a TorchTrainer (dsgkd.distributed) named after
the trial id on RUN/train, so a restarted trial resumes from its last epoch. The driver holds only a
custom `trial_driver` resource; the Train workers get their own placement group, so the number of
concurrent trials is computed from the cluster's CPUs/GPUs and the per-trial worker demand (unset, it
over-subscribes and hangs). Optuna's study lives in RUN/optuna.db, ASHA stops trials on the per-epoch
validation metric, and the frozen teacher's signals are computed once per cache group (teacher, data,
tokenisation) before any trial starts, then read by every trial.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna
import ray
import yaml
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from dsgkd import distributed
from dsgkd.config import RunConfig
from dsgkd.engine import NonFiniteLossError
from dsgkd.errors import UserError
from dsgkd.space import (DefineByRun, SearchSpace, categorical_variants, load_space, resolve_pairs,
                         seeded_points, setting, space_from_dict)

PATH_KEYS = ("data.path", "data.val_path", "data.test_path", "data.transfer_path")
RESUME_HELP = ("continue the search in RUN (Tuner.restore): finished trials are kept; in-flight and errored "
               "trials resume from their last epoch checkpoint. Ray does not restore ASHA's rungs (ray #30838); "
               "dsgkd rebuilds them from the results the trials had recorded, so a result that was not yet "
               "written when the search stopped is missing from the early-stopping cut-offs")


def add_search_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "search", help="Ray Tune + Optuna + ASHA search over a search-space YAML",
        description="Search DSG-KD settings with Ray Tune (OptunaSearch, ASHA); every trial is a Ray Train "
                    "DDP run. Writes RUN/space.yaml, RUN/optuna.db (study named after RUN), RUN/tune/, "
                    "RUN/train/ and RUN/teacher_cache/.")
    p.add_argument("--space", type=Path, metavar="FILE",
                   help="search-space YAML (see search_spaces/); with --resume defaults to RUN/space.yaml")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run directory")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.add_argument("--address", help="Ray cluster to join ('auto' = the one running here; default: "
                                     "$RAY_ADDRESS, else start a local instance)")
    p.add_argument("--num-samples", type=int, metavar="N", help="trials to run (overrides budget.num_samples)")
    p.add_argument("--no-teacher-cache", action="store_true",
                   help="run the frozen teacher live in every trial instead of the shared RUN/teacher_cache")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fixed setting of the space's base, e.g. --set data.path=notes.csv")
    p.add_argument("--optuna-storage", metavar="URL",
                   help="Optuna RDB URL (default: sqlite:///RUN/optuna.db), e.g. a PostgreSQL URL on a cluster")
    p.add_argument("--top", type=int, default=5, metavar="K", help="trials listed at the end")
    p.set_defaults(func=run_search)
    return p


def run_search(args: argparse.Namespace) -> int:
    """CLI entry: run (or resume) the search and print the top trials. 1 when no trial finished cleanly."""
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    grid = search(args.space, args.out, resume=args.resume, address=args.address,
                  num_samples=args.num_samples, teacher_cache=not args.no_teacher_cache,
                  storage=args.optuna_storage, overrides=overrides)
    print(top_trials(grid, load_space(Path(args.out) / "space.yaml"), args.top))
    return 0 if any(r.error is None for r in grid) else 1


def search(space: SearchSpace | str | Path | None, out: str | Path, *, resume: bool = False,
           address: str | None = None, num_samples: int | None = None, teacher_cache: bool = True,
           storage: str | None = None, overrides: dict[str, Any] | None = None) -> tune.ResultGrid:
    """Run the search into `out` (or resume it). Every input is validated before Ray starts."""
    run_dir = Path(out).resolve()
    space = _prepare(space, run_dir, resume, num_samples, overrides or {})
    plans = resolve_pairs(space, model_depth)
    _check_data(space.base)
    with _ray(address):
        concurrency = _concurrency(space)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            (run_dir / "space.yaml").write_text(space.dump_yaml(), encoding="utf-8")
        _set_up(space, plans, run_dir, teacher_cache)
        trainable = tune.with_resources(_trainable(space, run_dir, teacher_cache), {"trial_driver": 1})
        if resume:
            tuner = tune.Tuner.restore(str(run_dir / "tune"), trainable, resume_errored=True)
        else:
            tuner = _new_tuner(space, plans, run_dir, trainable, concurrency, storage)
        return tuner.fit()


def top_trials(grid: tune.ResultGrid, space: SearchSpace, k: int = 5) -> str:
    """The k best trials by their best epoch, as a fixed-width table."""
    rows = []
    for r in grid:
        df = r.metrics_dataframe
        over = space.trial_to_overrides(r.config)
        best = None
        if df is not None and space.metric in df and df[space.metric].notna().any():
            i = df[space.metric].idxmax() if space.mode == "max" else df[space.metric].idxmin()
            best = (float(df[space.metric][i]), int(df["epoch"][i]), int(df["epoch"].max()))
        status = "error: " + str(r.error).strip().splitlines()[-1][:60] if r.error else "done"
        rows.append((best, [Path(r.path).name.removeprefix("trial_"),
                            f"{over['teacher.ref']}>{over['student.ref']}", str(over["distill.layer_map"]),
                            *(_fmt(over.get(key)) for key in ("distill.alpha", "distill.beta", "distill.temperature")),
                            _fmt(best[0]) if best else "-", str(best[1]) if best else "-",
                            str(best[2]) if best else "-", status]))
    sign = -1 if space.mode == "max" else 1
    rows.sort(key=lambda row: (row[0] is None, sign * row[0][0] if row[0] else 0))
    header = ["trial", "pair", "layer_map", "alpha", "beta", "T", space.metric, "at_epoch", "epochs", "status"]
    table = [header] + [cells for _, cells in rows[:k]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    return f"Top {min(k, len(rows))} of {len(rows)} trials ({space.metric}, {space.mode}):\n" + "\n".join(lines)


def _prepare(space, run_dir: Path, resume: bool, num_samples, overrides) -> SearchSpace:
    """Load the space, apply overrides, anchor relative paths (trials run in other working dirs)."""
    as_run = run_dir / "space.yaml"
    if resume:
        if not (run_dir / "tune").is_dir() or not as_run.is_file():
            raise UserError(f"{run_dir}: no search to resume (missing tune/ or space.yaml)")
        previous = load_space(as_run)
        if space is not None and _anchor(space if isinstance(space, SearchSpace) else load_space(space)) != previous:
            raise UserError(f"--resume: {space} differs from {as_run}, the space this run started with; omit --space")
        if num_samples is not None or overrides:
            raise UserError("--resume: --num-samples and --set cannot change a started search")
        return previous
    if space is None:
        raise UserError("search: --space is required unless --resume")
    if (run_dir / "tune").exists():
        raise UserError(f"{run_dir}: already holds a search; pass --resume or choose another --out")
    if not isinstance(space, SearchSpace):
        space = load_space(space)
    raw = space.model_dump(mode="json")
    if overrides:
        raw["base"] = space.base.with_overrides(overrides, source="--set").model_dump(mode="json")
    if num_samples is not None:
        raw["budget"]["num_samples"] = num_samples
    return _anchor(space_from_dict(raw, source="search space"))


def _anchor(space: SearchSpace) -> SearchSpace:
    raw = space.model_dump(mode="json")
    paths = {k: os.path.abspath(v) for k in PATH_KEYS if (v := setting(space.base, k))}
    raw["base"] = space.base.with_overrides(paths).model_dump(mode="json")
    for pair in raw["pairs"]:
        for side in ("teacher", "student"):
            if Path(pair[side]).exists():  # a local model directory, not a preset or hub id
                pair[side] = os.path.abspath(pair[side])
    return space_from_dict(raw, source="search space")


def _check_data(cfg: RunConfig) -> None:
    """Read the notes once here, so a bad file or column is a one-line error before Ray starts."""
    from dsgkd.data.emr import load_splits
    from dsgkd.prepare import load_transfer

    load_splits(cfg.data)
    load_transfer(cfg)


@contextlib.contextmanager
def _ray(address: str | None):
    """Use the caller's Ray, join a cluster, or start a private local instance for the search."""
    if ray.is_initialized():
        yield
    elif address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address)
        try:
            yield
        finally:
            ray.shutdown()
    else:
        with local_ray():
            yield


@contextlib.contextmanager
def local_ray(num_cpus: int | None = None):
    """A local Ray whose processes all know its address; yields that address.

    Train V2 frees a stopped trial's worker placement group through the State API (so the dashboard must
    run, ray #54305), and a Ray process finds the State API by auto-detecting "the" local cluster, which
    fails when a second Ray instance runs on the machine; the next trial then waits forever for workers.
    So the GCS port is chosen here and exported as RAY_ADDRESS to every process the instance starts.
    """
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    address = f"{ray.util.get_node_ip_address()}:{port}"
    saved = {k: os.environ.get(k) for k in ("RAY_GCS_SERVER_PORT", "RAY_ADDRESS")}
    os.environ.update(RAY_GCS_SERVER_PORT=str(port), RAY_ADDRESS=address)
    try:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=True,
                 resources={"trial_driver": num_cpus or os.cpu_count() or 1})
        yield address
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _concurrency(space: SearchSpace) -> int:
    b = space.budget
    res = ray.cluster_resources()
    if res.get("trial_driver", 0) < 1:
        raise UserError("the Ray cluster advertises no 'trial_driver' resource; start its head with "
                        "--resources='{\"trial_driver\": 8}' (cluster.yaml does)")
    if b.max_concurrent:
        return b.max_concurrent
    limits = {"trial_driver": res["trial_driver"],
              "CPU": res.get("CPU", 0) // (b.workers_per_trial * b.cpus_per_worker)}
    if b.gpus_per_worker:
        limits["GPU"] = res.get("GPU", 0) // (b.workers_per_trial * b.gpus_per_worker)
    n = int(min(limits.values()))
    if n < 1:
        raise UserError(
            f"budget: a trial needs {b.workers_per_trial} worker(s) × {b.cpus_per_worker} CPU / "
            f"{b.gpus_per_worker} GPU but the cluster has {res.get('CPU', 0):g} CPU / {res.get('GPU', 0):g} GPU; "
            "lower budget.workers_per_trial, or set budget.max_concurrent on an autoscaling cluster")
    return n


def model_depth(ref: str) -> int:
    """Encoder depth from the model's config alone (a stand-in's from its spec, before it is built)."""
    from dsgkd.models.load import load_config
    from dsgkd.models.registry import resolve
    from dsgkd.models.tiny import TINY_SPECS

    r = resolve(ref)
    if r.kind == "tiny":
        return TINY_SPECS[r.ref].layers
    return int(load_config(ref).num_hidden_layers)


def cache_group(cfg: RunConfig) -> str:
    """Everything but the layers that decides a trial's teacher signal: teacher, data, tokenisation."""
    blob = json.dumps([cfg.teacher.model_dump(mode="json"), cfg.data.model_dump(mode="json"), cfg.train.seed,
                       cfg.train.max_length, cfg.distill.selector, cfg.distill.max_terms], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _set_up(space: SearchSpace, plans, run_dir: Path, use_cache: bool) -> None:
    """Heavy set-up as Ray tasks before the Tuner starts (on a GPU when the cluster has one): build every
    stand-in once, and the teacher signal once per cache group for the union of the layers its pairs'
    maps can read. RUN/teacher_cache/index.json maps each group to its cache directory."""
    gpu = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    refs = sorted({ref for p in space.pairs for ref in (p.teacher, p.student)})
    ray.get([ray.remote(num_cpus=1)(_load_tokenizer).remote(ref) for ref in refs])
    if not use_cache:
        return
    groups: dict[str, tuple[RunConfig, set[int]]] = {}
    for pair, cfg in categorical_variants(space):
        groups.setdefault(cache_group(cfg), (cfg, set()))[1].update(plans[pair].teacher_states)
    attention = _may_be_positive(space, "distill.beta")
    build = ray.remote(num_cpus=1, num_gpus=gpu)(_build_cache)
    dirs = ray.get([build.remote(cfg.model_dump(mode="json"), sorted(layers), str(run_dir / "teacher_cache"),
                                 attention) for cfg, layers in groups.values()])
    index = {group: Path(d).name for group, d in zip(groups, dirs)}
    (run_dir / "teacher_cache" / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")


def _load_tokenizer(ref: str) -> None:
    from dsgkd.models.load import load_tokenizer

    load_tokenizer(ref)


def _build_cache(cfg: dict[str, Any], layers: list[int], out_dir: str, attention: bool) -> str:
    import torch

    from dsgkd.prepare import build_cache

    device = torch.device("cuda") if torch.cuda.is_available() else None
    return str(build_cache(RunConfig.model_validate(cfg), layers, out_dir, attention=attention, device=device))


def _may_be_positive(space: SearchSpace, key: str) -> bool:
    dist = space.params.get(key)
    values = [setting(space.base, key)] if dist is None else dist.values()
    return any(v > 0 for v in values)


def _cache_dir(cfg: RunConfig, run_dir: Path) -> Path | None:
    index = run_dir / "teacher_cache" / "index.json"
    name = json.loads(index.read_text(encoding="utf-8")).get(cache_group(cfg)) if index.is_file() else None
    return run_dir / "teacher_cache" / name if name else None


def _trainable(space: SearchSpace, run_dir: Path, use_cache: bool):
    def trial_driver(config: dict[str, Any]) -> None:
        """One Tune trial: fit a TorchTrainer for this config; fail the trial when the loss diverged."""
        started = time.time()
        trial_id = tune.get_context().get_trial_id()
        name = f"train-{trial_id}"  # no timestamp: a restarted trial finds its Train run and resumes
        marker = run_dir / "train" / name / "nonfinite.txt"
        if marker.exists():  # a retry or resume of a diverged trial would diverge again
            raise NonFiniteLossError(marker.read_text(encoding="utf-8"))
        cfg = space.trial_config(config)
        cache = _cache_dir(cfg, run_dir) if use_cache and cfg.distill.kd_on else None
        if use_cache and cfg.distill.kd_on and cache is None:  # a numeric data/teacher setting was searched
            print(f"[dsgkd] trial {trial_id}: no teacher cache for this config; running the teacher live")
        b = space.budget
        result = distributed.make_trainer(
            cfg, name=name, storage_path=run_dir / "train", workers=b.workers_per_trial,
            cpus_per_worker=b.cpus_per_worker, gpus_per_worker=b.gpus_per_worker, teacher_cache=cache,
            max_failures=b.worker_retries, trial_started_at=started,
            callbacks=[TuneReportCallback()]).fit()
        if result.return_value:
            marker.write_text(result.return_value, encoding="utf-8")
            raise NonFiniteLossError(result.return_value)

    return trial_driver


def _new_tuner(space: SearchSpace, plans, run_dir: Path, trainable, concurrency: int,
               storage: str | None) -> tune.Tuner:
    searcher = OptunaSearch(
        DefineByRun(space, plans), metric=space.metric, mode=space.mode, seed=space.seed,
        storage=optuna.storages.RDBStorage(storage or f"sqlite:///{run_dir / 'optuna.db'}"),
        study_name=run_dir.name, points_to_evaluate=seeded_points(space, plans) or None)
    scheduler = ResumableASHA(  # epoch, not training_iteration: the latter restarts after a restore
        time_attr="epoch", max_t=space.max_t, grace_period=space.asha.grace_period,
        reduction_factor=space.asha.reduction_factor, stop_last_trials=False)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=space.metric, mode=space.mode, search_alg=searcher,
                                    scheduler=scheduler, num_samples=space.budget.num_samples,
                                    max_concurrent_trials=concurrency, trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name="tune", storage_path=str(run_dir),
                                  failure_config=tune.FailureConfig(max_failures=space.budget.trial_retries)))


class ResumableASHA(ASHAScheduler):
    """ASHA whose rungs survive `Tuner.restore`.

    On restore Ray re-adds every trial to the scheduler but does not restore the scheduler itself
    (ray #30838), so each re-added trial's recorded results are replayed into its bracket: the same
    values ASHA had recorded at each rung the trial passed. A new trial has no results to replay.
    """

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        bracket = self._trial_info[trial.trial_id]
        for result in _recorded_results(trial):
            if result.get(self._time_attr) is not None and result.get(self._metric) is not None:
                bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])


def _recorded_results(trial) -> list[dict[str, Any]]:
    if not trial.storage.trial_dir_name:  # a new trial: no directory, nothing recorded
        return []
    fs, path = trial.storage.storage_filesystem, f"{trial.storage.trial_fs_path}/result.json"
    try:
        with fs.open_input_stream(path) as f:
            lines = f.read().decode("utf-8").splitlines()
    except OSError:  # restored before its first result
        return []
    results = []
    for line in lines:
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written when the search was killed
            continue
    return results


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"  # the default embeds parameter values, pair names included


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
