"""Offline-first model refs: the local cache first, then one bounded question to the hub, downloads only for
a repo the hub says exists; and model shapes from configs alone."""
import time

import httpx2
import huggingface_hub
import huggingface_hub.constants
import pytest
from huggingface_hub.errors import RepositoryNotFoundError

from dsgkd.errors import UserError
from dsgkd.models import hub, tiny
from dsgkd.models.load import load_classifier
from dsgkd.models.presets import ResolvedRef, resolve
from dsgkd.models.shape import ModelShape, model_shape

URL = "https://huggingface.co/api/models/someone/nothing"


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE off, a fresh answer cache, and `model_info` replaced by what the test sets."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub._probe.cache_clear()

    def set_answer(fn):
        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id, **kw: fn(repo_id, **kw))

    yield set_answer
    hub._probe.cache_clear()


def _raise(exc):
    def fn(repo_id, **kw):
        raise exc
    return fn


def test_a_string_that_is_no_repo_id_fails_at_resolve(online):
    online(lambda *a, **kw: pytest.fail("an invalid repo id must not reach the hub"))
    with pytest.raises(UserError, match=r"'bad name!': not a preset, not a local directory, and not a valid "
                                        r"hub id .*presets: kmbert") as e:
        resolve("bad name!")
    assert "\n" not in str(e.value)


def test_offline_asks_the_hub_nothing(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **kw: pytest.fail("asked the hub"))
    for call in (load_classifier, model_shape):
        with pytest.raises(UserError, match="'someone/nothing': .* not available offline"):
            call("someone/nothing")


@pytest.mark.parametrize("error, needle", [
    (httpx2.ConnectError("[Errno 111] Connection refused"), "the hub is unreachable (ConnectError"),
    (RepositoryNotFoundError("404", response=httpx2.Response(404, request=httpx2.Request("GET", URL))),
     "no such model on the hub"),
])
def test_a_missing_model_fails_on_the_probe_without_downloading(online, error, needle):
    online(_raise(error))
    r = resolve("someone/nothing")

    def load(source, local_files_only=False, **kw):
        assert local_files_only, "downloaded although the probe said no"
        raise OSError("not cached")

    with pytest.raises(UserError) as e:
        hub.fetch(r, load)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_the_probe_keeps_its_deadline_whatever_the_hub_does(online, monkeypatch):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "0.5")
    online(lambda repo_id, **kw: time.sleep(10))
    t0 = time.perf_counter()
    assert "the hub is unreachable (TimeoutError, timeout 0.5 s" in hub.hub_status("someone/nothing")
    assert time.perf_counter() - t0 < 1.5


def test_a_model_the_hub_has_is_downloaded_and_the_hub_asked_once(online):
    asked = []
    online(lambda repo_id, **kw: asked.append((repo_id, kw["timeout"])))
    calls = []

    def load(source, local_files_only=False, **kw):
        calls.append(local_files_only)
        if local_files_only:
            raise OSError("not cached")
        return f"loaded {source}"

    r = ResolvedRef("kmbert", "preset", "madatnlp/km-bert", "bert")
    assert hub.fetch(r, load) == hub.fetch(r, load) == "loaded madatnlp/km-bert"
    hub.check_available(r)
    assert calls == [True, False, True, False] and asked == [("madatnlp/km-bert", hub.PROBE_TIMEOUT_S)]


def test_a_broken_download_is_one_line(online):
    online(lambda repo_id, **kw: None)

    def load(source, local_files_only=False, **kw):
        raise OSError("403 Client Error\nCannot access gated repo")

    with pytest.raises(UserError, match=r"'kmbert' \(madatnlp/km-bert\): download failed: 403 Client Error$"):
        hub.fetch(ResolvedRef("kmbert", "preset", "madatnlp/km-bert", "bert"), load)


# --- shapes from configs ---

def test_stand_in_shapes_come_from_the_spec_without_a_build(monkeypatch, tmp_path):
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny, "_build", lambda *a: pytest.fail("a shape must not build"))
    assert model_shape("biobert-tiny") == ModelShape(6, tiny.MODEL_MAX_LENGTH)
    assert model_shape("kobert-tiny").depth == 2
    assert not (tmp_path / "models").exists()


def test_local_directory_shape_takes_the_tighter_limit(local_bert_dir, tmp_path):
    assert model_shape(str(local_bert_dir)) == ModelShape(2, 128)  # tokenizer 128, positions 128
    (tmp_path / "config.json").write_bytes((local_bert_dir / "config.json").read_bytes())
    assert model_shape(str(tmp_path)) == ModelShape(2, 128)  # no tokenizer_config.json: the positions alone
    for recorded, limit in ((64, 64), (4096, 128), (int(1e30), 128)):
        (tmp_path / "tokenizer_config.json").write_text(f'{{"model_max_length": {recorded}}}')
        assert model_shape(str(tmp_path)) == ModelShape(2, limit)
