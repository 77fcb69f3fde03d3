"""Run folders and the secrets around them (issue 25, items 4-6): no storage password at rest or on screen, a run
folder read as data by `analyze` / `export` (a crafted pickle in it never runs), `--resume` refusing a folder
another user owns, one writer per folder, one Optuna study per run.

The searches here are dsgkd's own `search()` with each trial a formula instead of training (as in
tests/report/test_analysis.py), on one local Ray for the module. A password-protected storage is played by
SQLite behind a test-only SQLAlchemy dialect (`sqlite+pwtest://`) that insists on receiving the password in its
URL, so the password's whole path (environment → URL in memory → connection) runs without a database server.
"""
import contextlib
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL

from dsgkd.cli import main
from dsgkd.errors import UserError
from dsgkd.search import study as study_mod
from dsgkd.search import tune as tune_mod
from dsgkd.search.credentials import STORAGE_PASSWORD_ENV, TRACKING_PASSWORD_ENV, with_password
from dsgkd.search.run_lock import LOCK_FILE, REPORT_LOCK_FILE, run_lock
from dsgkd.search.study import read_record
from hostile_student import MARKER, refused

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-" + MARKER  # a password is a secret: the marker must not show up wherever it would


class PasswordSQLite(SQLiteDialect_pysqlite):
    """SQLite that stands in for a server needing a password: connecting without it fails."""

    supports_statement_cache = True

    def create_connect_args(self, url):
        if url.password != PASSWORD:
            raise ValueError("password authentication failed for user 'dsgkd'")
        return super().create_connect_args(URL.create("sqlite", database=url.database))


registry.register("sqlite.pwtest", __name__, "PasswordSQLite")


def protected(db: Path) -> str:
    return f"sqlite+pwtest://dsgkd@localhost/{db}"


def formula_trainable(space, run_dir, use_cache):
    """A trial that reports three engine-shaped epochs from its alpha (nested: Ray pickles it by value)."""
    from ray import tune

    def formula_trial(config):
        for epoch in (1, 2, 3):
            value = 0.5 + config["distill.alpha"] * epoch / 10
            tune.report({"epoch": epoch, "val_auroc": value, "best_epoch": epoch, "best_val_auroc": value})
    return formula_trial


SPACE = {"pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
         "params": {"distill.alpha": {"type": "categorical", "choices": [0.0, 0.3, 0.6]}},
         "layer_maps": ["all", "last_k:2"], "budget": {"num_samples": 3, "trial_retries": 0, "max_concurrent": 1},
         "seed": 1}


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "notes.csv"
    rows = [f"note {i} fever {MARKER if i % 7 == 0 else 'cough'},{i % 2},P{i}" for i in range(60)]
    path.write_text("ER_DHX,LABEL,PT_ID\n" + "\n".join(rows) + "\n")
    return path


def space_file(notes: Path, folder: Path) -> Path:
    raw = {"base": {"data": {"path": str(notes), "text_col": "ER_DHX", "label_col": "LABEL", "group_col": "PT_ID"},
                    "train": {"epochs": 3, "batch_size": 16, "max_length": 64, "patience": 3}}, **SPACE}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


@pytest.fixture
def formula_search(cluster, monkeypatch):
    """`search()` as the CLI runs it, trials as formulas, no stand-in to build; `during` runs under its lock."""
    during = []
    monkeypatch.setattr(tune_mod, "_trainable", formula_trainable)
    monkeypatch.setattr(tune_mod, "_set_up", lambda *a, **k: [f() for f in during])
    return during


def run_formula_cli(argv: list[str]) -> int:
    """`dsgkd argv` with formula trials; how `secret_run`'s child process runs the search."""
    tune_mod._trainable = formula_trainable
    tune_mod._set_up = lambda *a, **k: None
    return main(argv)


@pytest.fixture(scope="module")
def secret_run(notes, tmp_path_factory):
    """A run whose study lives in a password-protected storage, the password in the search's environment only.
    A child process (with a Ray of its own), so that everything the search printed, Ray's lines included, is seen."""
    tmp = tmp_path_factory.mktemp("secret")
    storage = protected(tmp / "shared.db")
    argv = ["search", "--space", str(space_file(notes, tmp / "in")), "--out", str(tmp / "run"),
            "--optuna-storage", storage]
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_runs; "
            f"sys.exit(test_runs.run_formula_cli({argv!r}))")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(ROOT), **{STORAGE_PASSWORD_ENV: PASSWORD})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp, preexec_fn=lambda: os.umask(0))  # permissive: what dsgkd writes must not be
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return {"run": tmp / "run", "storage": storage, "printed": proc.stdout + proc.stderr}


def holds_no(text: bytes | str, secret: str = PASSWORD) -> bool:
    return (secret.encode() if isinstance(text, bytes) else secret) not in text


# ------------------------------------------------------------------------------ 4. no secrets at rest
def test_no_password_in_any_file_of_the_run_or_any_printed_line(secret_run):
    run = secret_run["run"]
    assert "Top 3 of 3 trials" in secret_run["printed"] and holds_no(secret_run["printed"])
    pickles = sorted(run.glob("tune/*.pkl"))
    assert {p.name.split("-")[0] for p in pickles} >= {"tuner.pkl", "searcher"}  # the state Ray pickles
    for f in (p for p in run.rglob("*") if p.is_file()):
        assert holds_no(f.read_bytes()), f
    assert read_record(run).storage == secret_run["storage"]  # recorded as given: user and host, no password
    # the pickled searcher's storage gets the password back from the environment when --resume unpickles it
    os.environ[STORAGE_PASSWORD_ENV] = PASSWORD
    try:
        restored = pickle.loads(next(run.glob("tune/searcher-state-*.pkl")).read_bytes())["_storage"]
        assert restored.public_url == secret_run["storage"]
        assert restored.url == with_password(secret_run["storage"], STORAGE_PASSWORD_ENV) != restored.public_url
        assert len(restored.get_all_studies()) == 1  # it connects
    finally:
        del os.environ[STORAGE_PASSWORD_ENV]


def test_everything_a_search_writes_is_owner_only_under_a_permissive_umask(secret_run):
    """The search ran with umask 0: its folder, Tune's state and every trial's files (written by Ray's processes,
    started under the umask the command sets) are the user's alone."""
    run = secret_run["run"]
    written = [p for p in [run, *run.rglob("*")] if not p.is_symlink()]
    assert any(p.name == "result.json" for p in written) and (run / "space.yaml") in written
    loose = {str(p.relative_to(run)): oct(stat.S_IMODE(p.stat().st_mode)) for p in written
             if stat.S_IMODE(p.stat().st_mode) & 0o077}
    assert not loose


def test_analyze_with_the_password_from_a_file_writes_and_prints_none_of_it(secret_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(secret_run["run"], run)
    secret = tmp_path / "pw.txt"
    secret.write_text(PASSWORD + "\n")
    try:
        assert main(["analyze", str(run), "--no-plots", "--optuna-storage", secret_run["storage"],
                     "--storage-password-file", str(secret)]) == 0
    finally:
        os.environ.pop(STORAGE_PASSWORD_ENV, None)
    printed = capsys.readouterr()
    assert holds_no(printed.out + printed.err) and "note: no Optuna study" not in printed.out
    board = pd.read_csv(run / "analysis" / "leaderboard.csv")
    assert board["optuna_trial"].notna().all()  # the study was reached with the password
    for f in (p for p in (run / "analysis").rglob("*") if p.is_file()):
        assert holds_no(f.read_bytes()), f


def test_analyze_never_sends_the_password_to_a_storage_the_run_folder_names(secret_run, tmp_path, capsys,
                                                                           monkeypatch):
    """The recorded storage is used without the password: a crafted study.json must not collect it."""
    run = tmp_path / "run"
    shutil.copytree(secret_run["run"], run)
    monkeypatch.setenv(STORAGE_PASSWORD_ENV, PASSWORD)
    assert main(["analyze", str(run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "Optuna storage sqlite+pwtest://dsgkd@localhost/" in out and "not read" in out and holds_no(out)


@pytest.mark.parametrize("argv", [
    ["search", "--space", "SPACE", "--out", "RUN", "--optuna-storage", f"postgresql://dsgkd:{PASSWORD}@db/optuna"],
    ["search", "--space", "SPACE", "--out", "RUN", "--mlflow-uri", f"http://dsgkd:{PASSWORD}@mlflow:5000"],
    ["search", "--space", "SPACE", "--out", "RUN", "--mlflow-uri", f"http://mlflow:5000/?token={PASSWORD}"],
    ["analyze", "RUN", "--optuna-storage", f"mysql://dsgkd:{PASSWORD}@db/optuna"],
], ids=["storage-password", "mlflow-password", "mlflow-token", "analyze-storage-password"])
def test_a_password_on_the_command_line_is_refused_redacted(argv, notes, tmp_path, capsys):
    space = space_file(notes, tmp_path / "in")
    argv = [str(space) if a == "SPACE" else str(tmp_path / "run") if a == "RUN" else a for a in argv]
    err = refused(argv, capsys, [notes, space])
    assert "***" in err and "DSGKD_" in err and holds_no(err)
    assert not (tmp_path / "run").exists()


def test_an_unreachable_storage_is_one_redacted_line_and_leaves_no_folder(notes, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STORAGE_PASSWORD_ENV, "wrong-" + PASSWORD)
    space = space_file(notes, tmp_path / "in")
    err = refused(["search", "--space", str(space), "--out", str(tmp_path / "run"),
                   "--optuna-storage", protected(tmp_path / "db.sqlite")], capsys, [notes, space])
    assert "password authentication failed" in err and holds_no(err, "wrong-")
    assert not (tmp_path / "run").exists() and not ray.is_initialized()


def test_an_mlflow_store_that_fails_with_the_password_in_its_error_is_one_redacted_line(notes, tmp_path, capsys,
                                                                                       monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv(TRACKING_PASSWORD_ENV, PASSWORD)
    space = space_file(notes, tmp_path / "in")
    err = refused(["search", "--space", str(space), "--out", str(tmp_path / "run"),
                   "--mlflow-uri", "postgresql://dsgkd@127.0.0.1:1/mlflow"], capsys, [notes, space])
    assert "--mlflow-uri postgresql://dsgkd@127.0.0.1:1/mlflow" in err and holds_no(err)
    assert not (tmp_path / "run").exists()


def test_the_pickled_mlflow_logger_holds_no_password(monkeypatch):
    pytest.importorskip("mlflow")
    from ray import cloudpickle

    from dsgkd.search.mlflow_logger import EpochMLflowLogger

    monkeypatch.setenv(TRACKING_PASSWORD_ENV, PASSWORD)
    logger = EpochMLflowLogger("postgresql://dsgkd@db/mlflow", run_dir="/runs/x", experiment_name="x")
    assert holds_no(cloudpickle.dumps(logger))  # how Tune keeps it in RUN/tune/tuner.pkl
    assert logger._connect_uri() == f"postgresql://dsgkd:{PASSWORD}@db/mlflow"  # what it connects with


def test_a_missing_password_file_is_one_line(notes, tmp_path, capsys):
    space = space_file(notes, tmp_path / "in")
    err = refused(["search", "--space", str(space), "--out", str(tmp_path / "run"), "--storage-password-file",
                   str(tmp_path / "nowhere.txt")], capsys, [notes, space])
    assert "password file" in err and not (tmp_path / "run").exists()


def test_a_study_record_holding_a_password_is_refused_redacted(secret_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(secret_run["run"], run)
    record = json.loads((run / "study.json").read_text())
    (run / "study.json").write_text(json.dumps({**record, "storage": f"postgresql://u:{PASSWORD}@db/x"}))
    err = refused(["analyze", str(run), "--no-plots"], capsys, [run])
    assert "study.json" in err and holds_no(err)


# ------------------------------------------------------------------------------ 5. run folders are data
class Planted:
    """Unpickling this creates `path`: the code a crafted run folder would run."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def plant(run: Path, sign: Path) -> None:
    """Every pickle Ray keeps in RUN/tune replaced by a planted one, and planted pickles inside the JSON state."""
    payload = pickle.dumps(Planted(sign))
    for f in [*run.glob("tune/*.pkl"), *run.glob("tune/*/*.pkl")]:
        f.write_bytes(payload)
    blob = {"_type": "CLOUDPICKLE_FALLBACK", "value": payload.hex()}
    for state in run.glob("tune/experiment_state-*.json"):
        data = json.loads(state.read_text())
        data["runner_data"]["_stopper"] = blob
        for row in data["trial_data"]:
            trial = json.loads(row[0])
            trial["storage"] = trial["trial_dirname_creator"] = blob
            row[0] = json.dumps(trial)
        state.write_text(json.dumps(data))


def test_a_crafted_pickle_never_runs_under_analyze_or_export(secret_run, tmp_path, capsys):
    clean = tmp_path / "clean"
    shutil.copytree(secret_run["run"], clean)
    assert main(["analyze", str(clean), "--no-plots"]) == 0 and main(["export", str(clean)]) == 0
    run, sign = tmp_path / "crafted", tmp_path / "PWNED"
    shutil.copytree(secret_run["run"], run)
    plant(run, sign)
    assert main(["analyze", str(run), "--no-plots"]) == 0
    assert main(["export", str(run), "-o", str(tmp_path / "best.yaml")]) == 0
    assert not sign.exists()
    assert (pd.read_csv(run / "analysis" / "leaderboard.csv")
            .equals(pd.read_csv(clean / "analysis" / "leaderboard.csv")))  # the same results as before
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["provenance"]["trial_id"] == yaml.safe_load((clean / "best.yaml").read_text())["provenance"]["trial_id"]
    from ray.tune import ExperimentAnalysis  # the planted state does run under Tune's own loader: the test bites

    with contextlib.suppress(Exception):
        ExperimentAnalysis(str(run / "tune"))
    assert sign.exists()


def test_resume_refuses_a_folder_another_user_owns_before_unpickling(secret_run, tmp_path, capsys, monkeypatch):
    run, sign = tmp_path / "run", tmp_path / "PWNED"
    shutil.copytree(secret_run["run"], run)
    plant(run, sign)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(run).st_uid + 1)  # the folder is someone else's
    err = refused(["search", "--out", str(run), "--resume"], capsys, [run])
    assert "another user" in err and "resume only runs you made" in err and not sign.exists()


@pytest.mark.parametrize("damage", ["escaping-dir", "not-json", "study-record"])
def test_a_damaged_run_folder_is_one_line(damage, secret_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dsgkd.search.trial_records.time.sleep", lambda s: None)  # no waiting for a live writer
    run = tmp_path / "run"
    shutil.copytree(secret_run["run"], run)
    state = next(run.glob("tune/experiment_state-*.json"))
    if damage == "escaping-dir":
        data = json.loads(state.read_text())
        trial = json.loads(data["trial_data"][0][0])
        trial["relative_logdir"] = "../../../etc"
        data["trial_data"][0][0] = json.dumps(trial)
        state.write_text(json.dumps(data))
    elif damage == "not-json":
        state.write_text('{"trial_data": [["' + MARKER)
    else:
        (run / "study.json").write_text("[" + MARKER)
    commands = [["analyze", str(run), "--no-plots"], ["export", str(run), "-o", str(tmp_path / "b.yaml")]]
    for command in commands[:1] if damage == "study-record" else commands:  # export reads no study
        refused(command, capsys, [run])
    assert not (tmp_path / "b.yaml").exists() and not (run / "analysis").exists()


# --------------------------------------------------------------- 6. one writer per folder, one study per run
def test_a_second_search_into_one_folder_is_refused_at_once_and_the_first_completes(formula_search, notes, tmp_path):
    space, run = space_file(notes, tmp_path / "in"), tmp_path / "run"
    second = {}

    def start_second():  # runs while the first holds RUN: after its checks, before its trials
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
        second["proc"] = subprocess.run([sys.executable, "-m", "dsgkd.cli", "search", "--space", str(space),
                                         "--out", str(run)], capture_output=True, text=True, timeout=120, env=env,
                                        cwd=tmp_path)

    formula_search.append(start_second)
    grid = tune_mod.search(space, run)
    proc = second["proc"]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by `dsgkd search` (pid " in lines[0] and MARKER not in lines[0], proc.stderr
    assert len(grid) == 3 and all(r.error is None for r in grid)  # the first completed, alone
    assert not (run / LOCK_FILE).exists()


def test_a_held_lock_refuses_search_and_analyze_and_a_dead_holder_does_not(secret_run, notes, tmp_path, capsys):
    space = space_file(notes, tmp_path / "in")
    with run_lock(tmp_path / "run", "search"):
        err = refused(["search", "--space", str(space), "--out", str(tmp_path / "run")], capsys, [notes, space])
        assert f"in use by `dsgkd search` (pid {os.getpid()}" in err
        assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK_FILE]
    run = tmp_path / "copy"
    shutil.copytree(secret_run["run"], run)
    with run_lock(run, "analyze", REPORT_LOCK_FILE):
        assert "in use by `dsgkd analyze`" in refused(["analyze", str(run), "--no-plots"], capsys, [run])
    # a lock file left by a writer that died (its lock went with it) stops no one
    (run / REPORT_LOCK_FILE).write_text(json.dumps({"command": "export", "host": "h", "pid": 2 ** 22 + 1}))
    assert main(["export", str(run), "-o", str(tmp_path / "b.yaml")]) == 0


def test_two_runs_with_one_basename_on_a_shared_storage_get_two_studies(formula_search, notes, tmp_path):
    import optuna

    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    space = space_file(notes, tmp_path / "in")
    for owner in ("alice", "bob"):
        tune_mod.search(space, tmp_path / owner / "run", storage=shared)
    names = [read_record(tmp_path / owner / "run").study_name for owner in ("alice", "bob")]
    assert names[0] != names[1] and all(n.startswith("run-") for n in names)
    assert sorted(optuna.study.get_all_study_names(shared)) == sorted(names)
    for name in names:
        assert len(optuna.load_study(study_name=name, storage=shared).trials) == 3  # none mixed in


def test_a_study_name_already_in_the_storage_is_refused(tmp_path, monkeypatch):
    import optuna

    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setattr(study_mod.secrets, "token_hex", lambda n: "0" * (2 * n))
    optuna.create_study(study_name="run-00000000", storage=shared)
    with pytest.raises(UserError, match="already holds a study 'run-00000000' of another run"):
        study_mod.new_study(tmp_path / "run", shared)
