"""`dsgkd search`: Ray Tune + Optuna (define-by-run) + ASHA over DSG-KD configs.

Wiring (docs/architecture.md, "Search"): a single-worker trial trains inside the Tune trial (Ray's
guidance for one-process
training; a worker group of its own cost 17-22 s a trial here), holding that worker's CPUs/GPU, and resumes
from Tune's checkpoint. A multi-worker trial is a small driver that fits a TorchTrainer
(`dsgkd.search.distributed`) named after the trial id on RUN/train, so a restarted trial resumes from its
last epoch; the driver holds only a custom `trial_driver` resource and the Train workers get their own
placement group. Either way the number of concurrent trials is computed from the cluster's CPUs/GPUs and
the per-trial demand (unset, Tune over-subscribes the placement groups and hangs). Optuna's study lives in RUN/optuna.db
(or the storage the user names) under a name of its own, recorded in RUN/study.json (`dsgkd.search.study`), and
the search holds RUN's lock from its last check to its end (`dsgkd.search.run_lock`). ASHA stops trials on the per-epoch
validation metric, and the frozen teacher's signals are computed once per cache group (teacher, data,
tokenisation) before any trial starts, then read by every trial (`dsgkd.search.caches`). Finished trials
outside the best `budget.kept_checkpoints` drop their checkpoints (`dsgkd.search.prune`), and with
`budget.reselect` the best trials are re-run on fresh seeds after the Tuner (`dsgkd.search.reselect`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.search.optuna import OptunaSearch

from dsgkd.config import RunConfig
from dsgkd.errors import NonFiniteLossError, UserError
from dsgkd.models.shape import model_depth
from dsgkd.pipeline.note_store import store_dir
from dsgkd.pipeline.teacher_cache import cache_dirs
from dsgkd.search import distributed, reselect, study, tracking
from dsgkd.search.asha import ResumableASHA
from dsgkd.search.caches import build_caches, build_note_stores
from dsgkd.search.credentials import STORAGE_PASSWORD_ENV, refuse_inline_password
from dsgkd.search.local_ray import concurrency as trial_concurrency
from dsgkd.search.local_ray import ray_session, trial_resources
from dsgkd.search.prune import CheckpointPruner
from dsgkd.search.run_lock import LOCK_FILE, REPORT_LOCK_FILE, run_lock
from dsgkd.search.samplers import make_sampler
from dsgkd.search.space import (DefineByRun, SearchSpace, categorical_variants, load_space, resolve_pairs,
                                seeded_points, setting, space_from_dict)
from dsgkd.search.trial_records import best_epoch, saved_statuses
from dsgkd.storage import atomic_write_text

PATH_KEYS = ("data.path", "data.val_path", "data.test_path", "data.transfer_path")


def search(space: SearchSpace | str | Path | None, out: str | Path, *, resume: bool = False,
           address: str | None = None, num_samples: int | None = None, teacher_cache: bool = True,
           storage: str | None = None, overrides: dict[str, Any] | None = None, mlflow_uri: str | None = None,
           mlflow_experiment: str | None = None) -> tune.ResultGrid:
    """Run the search into `out` (or resume it). Every input is validated before Ray starts. Every trial
    writes TensorBoard event files; `mlflow_uri` also logs one MLflow run per trial (`dsgkd.search.tracking`)."""
    run_dir = Path(out).resolve()
    if storage is not None:
        refuse_inline_password(storage, "--optuna-storage", STORAGE_PASSWORD_ENV)
    space = _prepare(space, run_dir, resume, num_samples, overrides or {})
    mlflow_store = tracking.mlflow_target(run_dir, resume, mlflow_uri, mlflow_experiment)
    plans = resolve_pairs(space, model_depth)
    _check_data(space.base)
    if space.base.train.restart_floor > 0:
        print(f"[dsgkd] base.train.restart_floor {space.base.train.restart_floor:g} does not redraw trials (a stalled "
              "trial is a poor draw the sampler learns from); it applies when the exported config is trained")
    # keeping only the latest checkpoint forces an experiment snapshot at each one (cheap: a few kB on the
    # run's own disk), and Tune warns about every such snapshot
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with run_lock(run_dir, "search --resume" if resume else "search"):
        if not resume and (run_dir / "tune").exists():  # a search that started since the checks above
            raise UserError(f"{run_dir}: already holds a search; pass --resume or choose another --out")
        opened = None if resume else study.new_study(run_dir, storage)  # a bad storage: one line before Ray
        if not resume:
            atomic_write_text(run_dir / "space.yaml", space.dump_yaml())
            tracking.record_target(run_dir, mlflow_store)
        with ray_session(address):
            concurrency = trial_concurrency(space)
            trainable = tune.with_resources(_trainable(space, run_dir, teacher_cache), trial_resources(space))
            if resume and _trials_done(run_dir, space):  # only reselect's re-runs can be missing: straight to them
                grid = tune.Tuner.restore(str(run_dir / "tune"), trainable).get_results()
            else:
                _set_up(space, plans, run_dir, teacher_cache)
                if resume:
                    tuner = tune.Tuner.restore(str(run_dir / "tune"), trainable, resume_errored=True)
                else:
                    tuner = _new_tuner(space, plans, run_dir, trainable, concurrency, storage,
                                       tracking.callbacks(run_dir, mlflow_store), opened=opened)
                grid = tuner.fit()
            reselect.run(space, run_dir, plans, use_cache=teacher_cache, concurrency=concurrency)
            return grid


def _trials_done(run_dir: Path, space: SearchSpace) -> bool:
    """Every trial of the budget finished (TERMINATED) as the experiment state last saved it."""
    statuses = saved_statuses(run_dir / "tune")
    return len(statuses) >= space.budget.num_samples and set(statuses.values()) == {"TERMINATED"}


def top_trials(grid: tune.ResultGrid, space: SearchSpace, k: int = 5) -> str:
    """The k best trials by their best epoch, as a fixed-width table."""
    rows = []
    for r in grid:
        df = r.metrics_dataframe
        over = space.trial_to_overrides(r.config)
        found = best_epoch(df, space.metric, space.mode)
        best = (*found, int(df["epoch"].max())) if found else None
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
        _refuse_foreign(run_dir)
        if not (run_dir / "tune" / "tuner.pkl").is_file() or not as_run.is_file():
            hint = "; it stopped before Ray Tune saved its state: remove RUN/tune and start it again without --resume"
            raise UserError(f"{run_dir}: no search to resume (no space.yaml or tune/tuner.pkl)"
                            + (hint if (run_dir / "tune").is_dir() and as_run.is_file() else ""))
        previous = load_space(as_run)
        if space is not None and _anchor(space if isinstance(space, SearchSpace) else load_space(space)) != previous:
            raise UserError(f"--resume: {space} differs from {as_run}, the space this run started with; omit --space")
        if num_samples is not None or overrides:
            raise UserError("--resume: --num-samples and --set cannot change a started search")
        return previous
    if space is None:
        raise UserError("search: --space is required unless --resume")
    if (run_dir / "tune").exists() and (not (run_dir / "tune").is_dir() or any((run_dir / "tune").iterdir())):
        raise UserError(f"{run_dir}: already holds a search; pass --resume or choose another --out")
    # space.yaml without tune/ is a search that stopped before its first trial: starting it again is fine
    if run_dir.is_file() or (run_dir.is_dir() and any(p.name not in (LOCK_FILE, REPORT_LOCK_FILE) for p in run_dir.iterdir())
                             and not as_run.is_file()):
        raise UserError(f"{run_dir}: already exists and is not empty, and holds no search (no space.yaml); "
                        "choose a new or empty --out")
    if not isinstance(space, SearchSpace):
        space = load_space(space)
    raw = space.model_dump(mode="json")
    if overrides:
        raw["base"] = space.base.with_overrides(overrides, source="--set").model_dump(mode="json")
    if num_samples is not None:
        raw["budget"]["num_samples"] = num_samples
    return _anchor(space_from_dict(raw, source="search space"))


def _refuse_foreign(run_dir: Path) -> None:
    """--resume unpickles Ray's state (RUN/tune, RUN/train), and unpickling runs code: a run folder is trusted
    like code, so one that another user could have written is not resumed."""
    me = os.getuid()
    inside = (p for pattern in ("tune/*", "tune/*/*", "train/*", "train/*/*") for p in run_dir.glob(pattern))
    for path in [run_dir, *inside]:
        try:
            owner = path.lstat().st_uid
        except OSError:
            continue
        if owner != me:
            where = path.relative_to(run_dir).as_posix() if path != run_dir else "the folder"
            raise UserError(f"{run_dir}: --resume unpickles this run's Ray state, which can run code, and {where} "
                            f"belongs to another user (uid {owner}); resume only runs you made")


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
    from dsgkd.pipeline.prepare import load_transfer

    load_splits(cfg.data)
    load_transfer(cfg)


def _set_up(space: SearchSpace, plans, run_dir: Path, use_cache: bool) -> None:
    """Heavy set-up as Ray tasks before the Tuner starts: write the encoded notes once per store (building a
    missing stand-in there), and the teacher signal once per cache group of the space's categorical variants
    (`dsgkd.search.caches`)."""
    build_note_stores(run_dir, categorical_variants(space))
    if use_cache:
        build_caches(space, plans, run_dir, categorical_variants(space))


def _trainable(space: SearchSpace, run_dir: Path, use_cache: bool):
    b = space.budget

    def trial_driver(config: dict[str, Any]) -> None:
        """One Tune trial: fit in the trial, or through a TorchTrainer when it has several workers; fail the
        trial when the loss diverged."""
        started = time.time()
        trial_id = tune.get_context().get_trial_id()
        name = f"train-{trial_id}"  # no timestamp: a restarted trial finds its Train run and resumes
        marker = run_dir / "train" / name / "nonfinite.txt"
        if marker.exists():  # a retry or resume of a diverged trial would diverge again
            raise NonFiniteLossError(marker.read_text(encoding="utf-8"))
        cfg = space.trial_config(config)
        cache = cache_dirs(cfg, run_dir) if use_cache and cfg.distill.kd_on else None
        if use_cache and cfg.distill.kd_on and cache is None:  # a numeric data/teacher setting was searched
            print(f"[dsgkd] trial {trial_id}: no teacher cache for this config; running the teacher live")
        if b.workers_per_trial == 1:
            try:
                distributed.fit_in_trial(cfg, teacher_cache=cache, note_store=store_dir(run_dir))
            except NonFiniteLossError as e:
                atomic_write_text(marker, str(e))
                raise
            return
        result = distributed.make_trainer(
            cfg, name=name, storage_path=run_dir / "train", workers=b.workers_per_trial,
            cpus_per_worker=b.cpus_per_worker, gpus_per_worker=b.gpus_per_worker, teacher_cache=cache,
            note_store=store_dir(run_dir), max_failures=b.worker_retries, trial_started_at=started,
            callbacks=[TuneReportCallback()]).fit()
        if result.return_value:
            atomic_write_text(marker, result.return_value)
            raise NonFiniteLossError(result.return_value)

    return trial_driver


def _new_tuner(space: SearchSpace, plans, run_dir: Path, trainable, concurrency: int,
               storage: str | None, loggers: list, *, opened=None) -> tune.Tuner:
    """`opened`: the run's new study from `study.new_study` (made here when not given); RUN/study.json records it."""
    record, rdb = opened or study.new_study(run_dir, storage)
    study.write_record(run_dir, record)
    _, metric, mode = zip(*space.objectives)  # with a second objective: lists, for a two-objective study
    searcher = OptunaSearch(
        DefineByRun(space, plans), metric=list(metric) if len(metric) > 1 else metric[0],
        mode=list(mode) if len(mode) > 1 else mode[0],
        sampler=make_sampler(space.sampler, space.seed, space.n_startup),
        storage=rdb, study_name=record.study_name, points_to_evaluate=seeded_points(space, plans) or None)
    scheduler = ResumableASHA(  # epoch, not training_iteration: the latter restarts after a restore
        time_attr="epoch", max_t=space.max_t, grace_period=space.asha.grace_period,
        reduction_factor=space.asha.reduction_factor, stop_last_trials=False) if space.asha.enabled else None
    return tune.Tuner(
        trainable,
        # ASHA takes metric/mode from here (given on both, Tune refuses the scheduler's), so it cuts trials on
        # the primary metric alone, also in a two-objective study
        # a single-worker trial trains in its Tune actor: reusing the actors spares each later trial the ~5 s of
        # importing torch and transformers in a fresh process (a sixth of a demo trial); a multi-worker trial's
        # actor only drives a Ray Train run, whose workers start anew either way
        tune_config=tune.TuneConfig(metric=space.tuned_metric, mode=space.mode, search_alg=searcher,
                                    scheduler=scheduler, num_samples=space.budget.num_samples,
                                    max_concurrent_trials=concurrency, trial_dirname_creator=_trial_dirname,
                                    reuse_actors=space.budget.workers_per_trial == 1),
        run_config=tune.RunConfig(name="tune", storage_path=str(run_dir),
                                  failure_config=tune.FailureConfig(max_failures=space.budget.trial_retries),
                                  # single-worker trials checkpoint through Tune: the latest only, as
                                  # `distributed.make_trainer` keeps for Train runs
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  callbacks=[CheckpointPruner(space), *loggers]))


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"  # the default embeds parameter values, pair names included


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
