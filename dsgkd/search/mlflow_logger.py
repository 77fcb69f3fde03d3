"""Ray's MLflow logger as a dsgkd search needs it (see `dsgkd.search.tracking`); imported only when a search
logs to MLflow, since importing Ray's integration imports mlflow."""
from __future__ import annotations

from mlflow.tracking import MlflowClient
from ray.air.integrations.mlflow import MLflowLoggerCallback

from dsgkd.search.credentials import TRACKING_PASSWORD_ENV, with_password
from dsgkd.search.loggers import epoch_step, searched_params

RUN_TAG = "dsgkd.run"


class EpochMLflowLogger(MLflowLoggerCallback):
    """Ray's MLflow logger: one MLflow run per trial, tagged with the search's run directory and the trial id,
    its searched settings as params, every reported number as a metric stepped by epoch.

    A trial restored by `--resume` goes on in the MLflow run it started: Ray's logger keeps the trial → run
    map only in memory, so the run is looked up by its tags. (Tune's callback state would also survive a
    resume, but it is saved with the experiment snapshot, which lags a trial's start.)

    `tracking_uri` holds no password (Tune pickles this logger into RUN/tune/tuner.pkl): it is added from
    DSGKD_MLFLOW_PASSWORD only for the connections made here."""

    def __init__(self, tracking_uri: str, *, run_dir: str, experiment_name: str):
        super().__init__(tracking_uri, experiment_name=experiment_name, tags={RUN_TAG: run_dir})

    def setup(self, *args, **kwargs) -> None:
        public, self.tracking_uri = self.tracking_uri, self._connect_uri()
        try:
            super().setup(*args, **kwargs)
        finally:
            self.tracking_uri = public

    def _connect_uri(self) -> str:
        return with_password(self.tracking_uri, TRACKING_PASSWORD_ENV)

    def log_trial_start(self, trial) -> None:
        if trial not in self._trial_runs:
            self._trial_runs[trial] = self._started_run(trial) or self.mlflow_util.start_run(
                tags={**self.tags, "trial_name": str(trial), "trial_id": trial.trial_id},
                run_name=str(trial)).info.run_id
        self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=searched_params(trial.config))

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        metrics = {k: v for k, v in result.items() if k != "config"}  # the config is logged as params
        self.mlflow_util.log_metrics(run_id=self._trial_runs[trial], metrics_to_log=metrics,
                                     step=epoch_step(result))

    def _started_run(self, trial) -> str | None:
        found = MlflowClient(self._connect_uri()).search_runs(  # a trial id is hex and '_': safe to quote
            [self.mlflow_util.experiment_id], filter_string=f"tags.trial_id = '{trial.trial_id}'")
        return next((r.info.run_id for r in found if r.data.tags.get(RUN_TAG) == self.tags[RUN_TAG]), None)
