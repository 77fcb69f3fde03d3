"""Ray around `dsgkd.core.engine.fit`: the same training loop inside a Tune trial, or as a group of DDP workers.

The engine stays Ray-free (docs/architecture.md, "Layers"): once Ray Train's TorchConfig has initialised
`torch.distributed` (gloo on CPU, nccl on GPU), `fit` shards the batches across ranks, wraps the student in DDP and
all-gathers validation predictions, so every rank holds the same metrics; on a GPU it runs the forward passes under
bf16 autocast. A single-worker trial runs `fit` in the trial itself (`fit_in_trial`); a multi-worker trial gets
what Ray Train owns: the worker group, per-epoch reports (a barrier every rank must reach), rank-0 checkpoints on
shared storage, resuming from `ray.train.get_checkpoint()`, and worker-level retries (`ray.train.FailureConfig`).
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import transformers

from dsgkd.config import RunConfig
from dsgkd.core.engine import EpochReport, fit
from dsgkd.errors import NonFiniteLossError
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teachers import prepare_run


def epoch_reporter(report, checkpoint_cls, *, rank: int, world: int, entered: float,
                   trial_started_at: float | None) -> Callable[[EpochReport], None]:
    """The one seam between the engine's epochs and Ray: `report` is `ray.train.report` in a Train worker
    and `ray.tune.report` in a single-worker trial; only rank 0 writes the checkpoint. Each validation metric
    also goes out as `<metric>_at_best`, its value at the best epoch so far (what a second objective is told)."""
    def on_epoch(epoch: EpochReport) -> None:
        metrics = {**epoch.metrics, **{f"{k}_at_best": v for k, v in epoch.at_best.items()},
                   "is_best": epoch.is_best, "workers": world}
        if trial_started_at:  # Ray's share: trial start -> this process running our code
            metrics["ray_startup_s"] = entered - trial_started_at
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                epoch.save(tmp)
                checkpoint = checkpoint_cls.from_directory(tmp)
            report(metrics, checkpoint=checkpoint)

    return on_epoch


def cache_paths(caches: dict | None) -> dict[str, str] | None:
    """Teacher caches (source → directory) as the plain strings a Ray task or a Train loop config carries."""
    return {source: str(path) for source, path in caches.items()} if caches else None


def fit_from_checkpoint(cfg: RunConfig, previous, on_epoch, *, teacher_cache: dict[str, str] | None,
                        note_store: str | None = None, device=None) -> None:
    """`engine.fit`, resumed from `previous` (a Ray checkpoint, set after a restart or a restored search); the
    encoded notes memory-mapped from `note_store` (a search's RUN/note_store) when given."""
    quiet_transformers()
    with contextlib.ExitStack() as stack:
        resume_from = stack.enter_context(previous.as_directory()) if previous else None
        prepared = prepare_run(resolve_run(cfg), teacher_weights=teacher_cache is None,
                               note_store=Path(note_store) if note_store else None)
        fit(prepared, on_epoch=on_epoch,
            resume_from=resume_from, teacher_cache=teacher_cache, device=device)


def fit_in_trial(cfg: RunConfig, *, teacher_cache: dict | None, note_store: Path | None = None) -> None:
    """A single-worker trial trains inside the Tune trial itself: no worker group to start (17-22 s a
    trial on a 2-core machine), and Tune's own checkpoints, FailureConfig and `Tuner.restore` apply."""
    from ray import tune

    # Tune's function session logs every persisted checkpoint at INFO; the trial table shows progress
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    # no `ray_startup_s`: the trial's own process runs this code, so trial start -> dsgkd code is ~0 by
    # construction; the actor's start-up happens before the trial starts and is not visible from here
    on_epoch = epoch_reporter(tune.report, tune.Checkpoint, rank=0, world=1, entered=time.time(),
                              trial_started_at=None)
    fit_from_checkpoint(cfg, tune.get_checkpoint(), on_epoch, teacher_cache=cache_paths(teacher_cache),
                        note_store=str(note_store) if note_store else None)


def train_loop_per_worker(loop_config: dict[str, Any]) -> str | None:
    """One Train worker. Returns the reason when the loss turned non-finite, else None.

    A NaN is deterministic, so raising it would only make Ray Train restart the worker group from the last
    checkpoint and hit the same NaN again. Every rank catches it at the same step (the engine all-reduces
    the check), rank 0's return value reaches the trial driver, and the driver fails the trial with it.
    """
    entered = time.time()
    # Ray Train sets a worker's root logger to INFO on the console, and logs each rank's every report there
    # (under a logger named after its source file, which its LoggingConfig does not reach); the reports'
    # metrics are in RUN/tune all the same.
    logging.getLogger().setLevel(logging.WARNING)
    cfg = RunConfig.model_validate(loop_config["config"])
    ctx = ray.train.get_context()
    on_epoch = epoch_reporter(ray.train.report, ray.train.Checkpoint, rank=ctx.get_world_rank(),
                              world=ctx.get_world_size(), entered=entered,
                              trial_started_at=loop_config.get("trial_started_at"))
    try:
        fit_from_checkpoint(cfg, ray.train.get_checkpoint(), on_epoch, teacher_cache=loop_config["teacher_cache"],
                            note_store=loop_config.get("note_store"), device=ray.train.torch.get_device())
    except NonFiniteLossError as e:
        return str(e)
    return None


def quiet_transformers() -> None:
    """A fresh classifier head's load report and the weight-loading bar, from every Ray process, are noise
    in the job log a user watches."""
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def make_trainer(cfg: RunConfig, *, name: str, storage_path: str | Path, workers: int = 1,
                 cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 teacher_cache: dict | None = None, note_store: Path | None = None, max_failures: int = 1,
                 trial_started_at: float | None = None,
                 callbacks: Sequence[Any] = ()) -> ray.train.torch.TorchTrainer:
    """A TorchTrainer for one config. A fixed `name` on the same storage makes a restarted run resume."""
    use_gpu = gpus_per_worker > 0
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if use_gpu else {})}
    return ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": cfg.model_dump(mode="json"),
                           "teacher_cache": cache_paths(teacher_cache),
                           "note_store": str(note_store) if note_store else None,
                           "trial_started_at": trial_started_at},
        torch_config=ray.train.torch.TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=str(storage_path),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            # Only the latest checkpoint: the engine writes the best epoch's weights into every one
            # (in optim.pt, with best_epoch in state.json), and a base-size model with its AdamW
            # state per epoch per trial would fill the disk.
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=list(callbacks),
            # The job log is for progress and errors. Ray Train's own INFO lines (every checkpoint, the
            # worker group's start) go to its session log files only, not the console. Its print patch logs
            # even what a library prints into a captured stdout: datasets fingerprints a table with dill,
            # which disassembles a function into a StringIO, and every worker's log got that bytecode.
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
            worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
        ),
    )
