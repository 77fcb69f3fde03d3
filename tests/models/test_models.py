"""Model references, loading, and the offline stand-ins (built once per session in conftest's cache)."""
import json
import threading
import time
import unicodedata

import huggingface_hub.constants
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertModel

from dsgkd.errors import UserError
from dsgkd.models import build, tiny
from dsgkd.models.load import encoder_depth, encoder_width, load_classifier, load_config, load_tokenizer
from dsgkd.models.presets import PRESETS, resolve
from dsgkd.models.shape import ModelShape, max_length_limit, model_shape

NAMES = list(tiny.TINY_SPECS)
NOTE = "3일전부터 Fever로 내원, r/o UTI. SpO2 98%"


@pytest.fixture(scope="session")
def tiny_dirs():
    return {name: tiny.ensure_tiny(name) for name in NAMES}


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def fake_builds(monkeypatch, tmp_path):
    """A private cache whose builds only write the marker file, counting calls."""
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    calls = []

    def build(name, spec, steps, corpora, out):
        calls.append(name)
        time.sleep(0.2)  # long enough for a racing caller to reach the lock
        (out / "dsgkd_tiny.json").write_text(json.dumps({"steps": steps}))

    monkeypatch.setattr(tiny, "_build", build)
    return calls


# --- references ---

def test_presets_resolve_to_hub_ids():
    r = resolve("kmbert")
    assert (r.kind, r.source, r.family) == ("preset", "madatnlp/km-bert", "bert")
    assert resolve("xlmr").family == "xlm-roberta"
    assert resolve("kobert").source == "kykim/bert-kor-base"
    assert {"kmbert", "biobert", "clinicalbert", "xlmr", "kobert", "mbert"} <= set(PRESETS)


def test_stand_ins_resolve_to_their_keyed_directory_without_building(monkeypatch, tmp_path):
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny, "_build", lambda *a: pytest.fail("resolve must not build"))
    r = resolve("xlmr-tiny")
    assert (r.ref, r.kind, r.family) == ("xlmr-tiny", "tiny", "xlm-roberta")
    assert r.source == str(tiny.tiny_dir("xlmr-tiny")) and r.source.startswith(str(tmp_path / "models" / "xlmr-tiny-"))
    assert not (tmp_path / "models").exists()
    assert resolve("kmbert-tiny").family == "bert"


def test_a_worlds_stand_in_learns_from_that_worlds_corpora(monkeypatch, tmp_path):
    """`name@world` is its own stand-in: its own directory (its corpora differ) and the family's shape."""
    from dsgkd.models.shape import model_depth

    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny, "_build", lambda *a: pytest.fail("resolve must not build"))
    r = resolve("kmbert-tiny@w2")
    assert (r.kind, r.family) == ("tiny", "bert") and "kmbert-tiny-w2-" in r.source
    assert r.source != resolve("kmbert-tiny").source != resolve("kmbert-tiny@w3").source
    assert model_depth("kmbert-tiny@w2") == tiny.TINY_SPECS["kmbert-tiny"].layers
    spec = tiny.TINY_SPECS["kmbert-tiny"]
    assert tiny._corpora(spec, "w2")[0][:50] != tiny._corpora(spec, "default")[0][:50]
    assert tiny.split_ref("nosuch@w2") is None and tiny.stand_in_ref("kmbert-tiny", "default") == "kmbert-tiny"


def test_local_directory_and_hub_id(local_bert_dir, tmp_path):
    r = resolve(str(local_bert_dir))
    assert (r.kind, r.family, r.source) == ("dir", "bert", str(local_bert_dir.resolve()))
    assert resolve("someone/some-bert").kind == "hub"
    with pytest.raises(UserError, match="no config.json"):
        resolve(str(tmp_path))
    with pytest.raises(UserError, match="not an existing model directory"):
        resolve(str(tmp_path / "missing" / "model"))


@pytest.mark.parametrize("ref, needle", [("foo/bar", "not available offline"),
                                         ("kmbert-tny", "presets: kmbert"),
                                         ("biobert", "dmis-lab/biobert-base-cased-v1.2")])
def test_unavailable_models_fail_in_one_line(offline, ref, needle):
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        load_classifier(ref)
    msg = str(e.value)
    assert needle in msg and ref in msg and "\n" not in msg
    assert time.perf_counter() - t0 < 5  # no network retries


def test_slow_only_tokenizer_is_refused(tmp_path):
    sentencepiece = pytest.importorskip("sentencepiece")
    from transformers import BertGenerationTokenizer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the patient had fever and cough on day {i}\n" for i in range(100)))
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=30,
                                            minloglevel=2)
    out = tmp_path / "slow"
    BertGenerationTokenizer(str(tmp_path / "sp.model")).save_pretrained(out)
    BertConfig(vocab_size=40).save_pretrained(out)
    with pytest.raises(UserError, match="slow-only"):
        load_tokenizer(str(out))


# --- local checkpoints ---

def test_local_bert_classifier_directory_loads(local_bert_dir):
    tok, model = load_classifier(str(local_bert_dir), num_labels=3)
    assert tok.is_fast and model.config.num_labels == 3
    logits = model(**tok(["r/o UTI", "fever로 내원"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 3)


def test_local_bare_encoder_gets_a_fresh_head(tiny_dirs, tmp_path):
    src = tiny_dirs["kobert-tiny"]
    BertModel.from_pretrained(src).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path)
    _, model = load_classifier(str(tmp_path))
    ref = AutoModel.from_pretrained(src)
    assert torch.equal(model.bert.encoder.layer[0].output.dense.weight, ref.encoder.layer[0].output.dense.weight)


# --- stand-ins ---

@pytest.mark.parametrize("name", NAMES)
def test_stand_in_is_a_complete_hf_directory(tiny_dirs, name):
    d = tiny_dirs[name]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "dsgkd_tiny.json"} <= {p.name for p in d.iterdir()}
    tok = AutoTokenizer.from_pretrained(d)
    enc = tok(NOTE, return_offsets_mapping=True)
    assert tok.is_fast and len(enc["offset_mapping"]) == len(enc["input_ids"])
    # transformers v5 rebuilds BERT/XLM-R tokenizers from the vocabulary and init arguments, not from
    # tokenizer.json: both must agree or a reload would tokenise differently from the build
    assert enc["input_ids"] == Tokenizer.from_file(str(d / "tokenizer.json")).encode(NOTE).ids
    assert tok.unk_token_id not in tok("fever cough", add_special_tokens=False)["input_ids"]
    spec = tiny.TINY_SPECS[name]
    clf = AutoModelForSequenceClassification.from_pretrained(d, num_labels=2)
    out = clf(**tok(NOTE, return_tensors="pt"), output_hidden_states=True)
    assert len(out.hidden_states) == spec.layers + 1 and out.hidden_states[0].shape[-1] == spec.hidden
    assert AutoModel.from_pretrained(d).config.model_type == spec.family
    meta = json.loads((d / "dsgkd_tiny.json").read_text())
    assert meta["mlm_loss_after"] < meta["mlm_loss_before"]


def test_kmbert_tiny_is_uncased_and_decomposes_hangul(tiny_dirs):
    tok = load_tokenizer("kmbert-tiny")
    enc = tok("Fever 발열", add_special_tokens=False, return_offsets_mapping=True)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    assert pieces[0] == "fever"
    jamo = "".join(p.removeprefix("##") for p in pieces[1:])
    assert jamo == unicodedata.normalize("NFD", "발열") and all("\u1100" <= ch <= "\u11ff" for ch in jamo)
    assert all(6 <= a < b <= 8 for a, b in enc["offset_mapping"][1:])  # jamo pieces map back to the syllables


def test_cased_stand_ins_keep_case(tiny_dirs):
    for name in ("biobert-tiny", "kobert-tiny"):
        assert load_tokenizer(name).tokenize("Fever")[0].startswith("F")


def test_xlmr_tiny_is_sentencepiece(tiny_dirs):
    tok = load_tokenizer("xlmr-tiny")
    pieces = tok.tokenize("fever 발열")
    assert pieces[0].startswith("▁") and any(p.startswith("▁") for p in pieces[1:])
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]


@pytest.mark.parametrize("name", NAMES)
def test_helpers_and_the_longest_input(tiny_dirs, name):
    tok, model = load_classifier(name)
    spec = tiny.TINY_SPECS[name]
    assert (encoder_depth(model), encoder_width(model)) == (spec.layers, spec.hidden)
    assert load_config(name).num_hidden_layers == spec.layers
    limit = max_length_limit(model.config, tok.model_max_length)
    assert limit >= 384
    assert model_shape(name) == ModelShape(spec.layers, limit)  # what the spec alone says is what was built
    batch = tok(" ".join(["fever"] * 1000), truncation=True, max_length=limit, return_tensors="pt")
    assert batch["input_ids"].shape[1] == limit
    model(**batch)  # the whole position table is usable, including XLM-R's padding offset


def test_attention_implementation_follows_the_need(tiny_dirs):
    tok, model = load_classifier("kmbert-tiny", output_attentions=True)
    assert model.config._attn_implementation == "eager"
    att = model(**tok(NOTE, return_tensors="pt"), output_attentions=True).attentions
    assert len(att) == 4 and torch.allclose(att[0].sum(-1), torch.ones(()), atol=1e-5)
    assert load_classifier("kmbert-tiny")[1].config._attn_implementation == "sdpa"


def test_random_init_keeps_shapes_but_not_weights(tiny_dirs):
    _, trained = load_classifier("biobert-tiny")
    torch.manual_seed(0)
    _, fresh = load_classifier("biobert-tiny", random_init=True)
    torch.manual_seed(0)
    _, again = load_classifier("biobert-tiny", random_init=True)
    a, b, c = trained.state_dict(), fresh.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    w = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(a[w], b[w]) and torch.equal(b[w], c[w])


# --- the cache ---

def test_cache_hit_does_not_rebuild(tiny_dirs, monkeypatch):
    d = tiny_dirs["kobert-tiny"]
    before = (d / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(tiny, "_build", lambda *a: pytest.fail("rebuilt a cached stand-in"))
    assert tiny.ensure_tiny("kobert-tiny") == d
    assert (d / "model.safetensors").stat().st_mtime_ns == before


def test_cache_key_tracks_the_step_count(fake_builds, monkeypatch):
    monkeypatch.setenv("DSGKD_TINY_STEPS", "1")
    one = tiny.ensure_tiny("kobert-tiny")
    monkeypatch.setenv("DSGKD_TINY_STEPS", "2")
    two = tiny.ensure_tiny("kobert-tiny")
    assert one != two and one.parent == two.parent == tiny.cache_root() / "models"
    assert fake_builds == ["kobert-tiny", "kobert-tiny"]


def test_racing_callers_build_once(fake_builds):
    results = []
    threads = [threading.Thread(target=lambda: results.append(tiny.ensure_tiny("xlmr-tiny"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_builds == ["xlmr-tiny"] and len(set(results)) == 1
    assert not [p for p in results[0].parent.iterdir() if p.is_dir() and p != results[0]]  # no temp dirs left


def test_a_cold_build_leaves_the_callers_rng_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    monkeypatch.setenv("DSGKD_TINY_STEPS", "1")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    tiny.ensure_tiny("kobert-tiny")
    assert torch.equal(torch.rand(3), expected)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    assert tiny.cache_root() == tmp_path
    monkeypatch.delenv("DSGKD_CACHE")
    assert tiny.cache_root().parts[-2:] == (".cache", "dsgkd")


@pytest.mark.parametrize("name", ["kobert-tiny", "xlmr-tiny"])  # WordPiece, Unigram
def test_a_stand_in_builds_into_the_same_weights_and_vocabulary_in_two_processes(name, tmp_path):
    """What a table resumed on another machine relies on: the tokenizer trainers order their ties by hash-map
    iteration (a different vocabulary per build before models.vocab), two processes hash differently."""
    import os
    import subprocess
    import sys

    code = f"from dsgkd.models.tiny import ensure_tiny; ensure_tiny({name!r})"
    for k in range(2):
        env = {**os.environ, "DSGKD_CACHE": str(tmp_path / str(k)), "DSGKD_TINY_STEPS": "3", "PYTHONHASHSEED": str(k)}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    first, second = (next((tmp_path / str(k) / "models").iterdir()) for k in range(2))
    assert first.name == second.name
    for f in ("tokenizer.json", "model.safetensors", "config.json"):
        assert (first / f).read_bytes() == (second / f).read_bytes(), f


def test_pretraining_is_deterministic_given_the_tokenizer(tiny_dirs):
    """The MLM run on one thread from the spec's seed: the same weights from the same tokenizer."""
    spec = tiny.TINY_SPECS["kobert-tiny"]
    tok = AutoTokenizer.from_pretrained(tiny_dirs["kobert-tiny"])
    texts = tiny._corpora(spec, "default")[1][:1500]
    runs = []
    for _ in range(2):
        torch.manual_seed(spec.seed)
        runs.append(build._pretrain(spec, tok, texts, 3, tiny._recipe()))
    (a, stats_a), (b, stats_b) = runs
    assert stats_a == stats_b and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                                        b.state_dict().values()))


def test_missing_stand_ins_are_built_side_by_side(monkeypatch, tmp_path):
    """Two cold stand-ins build in two spawned processes at once (each on one thread), costliest first."""
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    monkeypatch.setenv("DSGKD_TINY_STEPS", "1")
    lines = []
    dirs = tiny.ensure_all(["kobert-tiny", "biobert-tiny"], workers=2, log=lines.append)
    assert dirs == {n: tiny.tiny_dir(n) for n in ("kobert-tiny", "biobert-tiny")}
    assert all((d / "dsgkd_tiny.json").is_file() for d in dirs.values())
    assert [line.split(":")[0].strip() for line in lines] == ["biobert-tiny", "kobert-tiny"]
    assert tiny.ensure_all(["kobert-tiny"], log=lines.append) == {"kobert-tiny": dirs["kobert-tiny"]}
    assert len(lines) == 2  # nothing left to build, nothing logged


def test_quiet_progress_silences_transformers_bars_only_inside_the_block():
    from transformers.utils import logging as hf_logging

    from dsgkd.models.build import quiet_progress

    hf_logging.enable_progress_bar()
    with quiet_progress():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    with quiet_progress():
        pass
    assert not hf_logging.is_progress_bar_enabled()  # a caller's own choice stands
    hf_logging.enable_progress_bar()
