"""`dsgkd search --out`: what it refuses and accepts, decided before Ray starts (no Ray instance here)."""
import pytest
import ray
import yaml

from dsgkd.cli import main
from dsgkd.errors import UserError
from dsgkd.search.tune import _prepare

SPACE = {"base": {"data": {"path": "notes.csv"}}, "pairs": [{"teacher": "kmbert-tiny", "student": "kobert-tiny"}],
         "layer_maps": ["uniform"]}


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def test_a_non_empty_directory_that_is_no_search_is_refused_before_ray(tmp_path, space_file, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.docx").write_text("do not touch")
    assert main(["search", "--space", str(space_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "not empty" in err and "no space.yaml" in err
    assert [p.name for p in out.iterdir()] == ["thesis.docx"] and not ray.is_initialized()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        _prepare(space_file, tmp_path / "a-file", False, None, {})


def test_what_a_search_may_start_or_resume_in(tmp_path, space_file):
    assert _prepare(space_file, tmp_path / "new", False, None, {}).pairs[0].student == "kobert-tiny"
    (tmp_path / "empty").mkdir()
    assert _prepare(space_file, tmp_path / "empty", False, None, {})
    stopped = tmp_path / "stopped"  # a search that stopped before its first trial: space.yaml, no tune/
    stopped.mkdir()
    (stopped / "space.yaml").write_text(space_file.read_text())
    (stopped / "teacher_cache").mkdir()
    assert _prepare(space_file, stopped, False, None, {})
    (stopped / "tune").mkdir()  # Ray started but saved nothing: nothing to resume, started again
    with pytest.raises(UserError, match="no search to resume .*remove RUN/tune"):
        _prepare(None, stopped, True, None, {})
    assert _prepare(space_file, stopped, False, None, {})
    (stopped / "tune" / "tuner.pkl").write_bytes(b"")  # a started search: resumed, never restarted over
    with pytest.raises(UserError, match="already holds a search; pass --resume"):
        _prepare(space_file, stopped, False, None, {})
    resumed = _prepare(None, stopped, True, None, {})
    assert resumed.pairs[0].teacher == "kmbert-tiny"
    with pytest.raises(UserError, match="no search to resume"):
        _prepare(None, tmp_path / "empty", True, None, {})
