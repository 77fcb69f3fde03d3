"""Offline stand-ins for the real teacher/student families, built here because no hub is reachable.

Each stand-in copies what matters to DSG-KD about its family: the tokenizer kind (cased / uncased
WordPiece, SentencePiece Unigram), a different depth and width (so layer maps and projections are
exercised), and where its knowledge comes from: teachers get a short MLM pretraining on the clinical
domain corpus, students on general Korean prose only, so they read the notes but do not know what the
clinical terms mean.

A stand-in is cached with its tokenizer in one directory, keyed by everything that shapes it (spec,
corpus content, step count, BUILD_VERSION): the WordPiece trainer is not deterministic, so a tokenizer
rebuilt beside a cached model could silently mismatch its embeddings.
"""
from __future__ import annotations

import copy
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import string
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

BUILD_VERSION = 2  # bump when the build recipe changes in a way the constants below do not show
SEQ_LEN = 64
BATCH_SIZE = 16
LR = 2e-3
MODEL_MAX_LENGTH = 512
EVAL_BLOCKS = 64
# every ASCII character gets a vocabulary entry, so English terms in a Korean-trained vocabulary split
# into pieces instead of collapsing to [UNK] (which would leave nothing to align)
_ALPHABET = list(string.ascii_letters + string.digits + string.punctuation)
_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# XLM-R's own ids for the first four (pad 1 is its position-embedding padding_idx); the transformers
# class hard-codes unk_id 3
_XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@dataclass(frozen=True)
class TinySpec:
    """Corpus counts are (domain sentences, general sentences), taken from the front of each corpus."""

    family: str  # Hugging Face model_type: "bert" or "xlm-roberta"
    cased: bool
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab_size: int
    tokenizer_corpus: tuple[int, int]
    mlm_corpus: tuple[int, int]
    mlm_steps: int = 800
    seed: int = 0


TINY_SPECS: dict[str, TinySpec] = {
    # KM-BERT: uncased Korean medical BERT; NFD turns Hangul into jamo, as in real uncased vocabularies
    # Teachers get 5x the MLM steps: at 800 a tiny MLM is barely past unigram statistics and its term
    # vectors do not encode severity (benchmarks/term_probe.py: ~0.5); at 4,000 they separate severe from
    # mild terms (~1.0). A domain teacher that knows nothing would make DSG-KD untestable.
    "kmbert-tiny": TinySpec("bert", cased=False, layers=4, hidden=128, heads=4, intermediate=256, vocab_size=4000,
                            tokenizer_corpus=(8000, 2000), mlm_corpus=(8000, 2000), mlm_steps=4000),
    "biobert-tiny": TinySpec("bert", cased=True, layers=6, hidden=96, heads=4, intermediate=192, vocab_size=3000,
                             tokenizer_corpus=(8000, 0), mlm_corpus=(8000, 0), mlm_steps=4000),
    # students see a little clinical text only in their tokenizer corpus, as multilingual vocabularies do
    "xlmr-tiny": TinySpec("xlm-roberta", cased=True, layers=4, hidden=64, heads=4, intermediate=128,
                          vocab_size=4000, tokenizer_corpus=(3000, 8000), mlm_corpus=(0, 8000)),
    "kobert-tiny": TinySpec("bert", cased=True, layers=2, hidden=96, heads=4, intermediate=192, vocab_size=3000,
                            tokenizer_corpus=(1000, 8000), mlm_corpus=(0, 8000)),
}


def cache_root() -> Path:
    return Path(os.environ.get("DSGKD_CACHE") or Path.home() / ".cache" / "dsgkd")


def _steps(spec: TinySpec) -> int:
    override = os.environ.get("DSGKD_TINY_STEPS")
    return int(override) if override else spec.mlm_steps


def _corpora(spec: TinySpec) -> tuple[list[str], list[str]]:
    """Tokenizer texts and MLM texts; both corpora are generated once at the largest size needed."""
    from dsgkd.data.synthetic import generate_domain_corpus, generate_general_corpus

    n_dom = max(spec.tokenizer_corpus[0], spec.mlm_corpus[0])
    n_gen = max(spec.tokenizer_corpus[1], spec.mlm_corpus[1])
    dom = generate_domain_corpus(n_dom, seed=spec.seed) if n_dom else []
    gen = generate_general_corpus(n_gen, seed=spec.seed) if n_gen else []

    def take(counts: tuple[int, int]) -> list[str]:
        return dom[: counts[0]] + gen[: counts[1]]

    return take(spec.tokenizer_corpus), take(spec.mlm_corpus)


def _cache_key(name: str, spec: TinySpec, steps: int, corpora: tuple[list[str], list[str]]) -> str:
    # the corpus text itself is hashed, so an edited generator can never hand back a stale model
    h = hashlib.sha256()
    recipe = {"build_version": BUILD_VERSION, "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "lr": LR,
              "model_max_length": MODEL_MAX_LENGTH, "eval_blocks": EVAL_BLOCKS}
    h.update(json.dumps({"name": name, "spec": dataclasses.asdict(spec), "steps": steps, **recipe},
                        sort_keys=True).encode())
    for texts in corpora:
        h.update(b"\x00corpus")
        for t in texts:
            h.update(t.encode("utf-8") + b"\x00")
    return h.hexdigest()


def _train_tokenizer(spec: TinySpec, texts: list[str]):
    """Trained with the same normaliser/pre-tokeniser the transformers class rebuilds on load (v5
    classes rebuild the pipeline from the vocabulary and their init arguments, not from tokenizer.json)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast, XLMRobertaTokenizerFast

    if spec.family == "bert":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=not spec.cased, strip_accents=not spec.cased)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(
            vocab_size=spec.vocab_size, special_tokens=_BERT_SPECIALS, initial_alphabet=_ALPHABET,
            show_progress=False))
        vocab = tok.get_vocab()
        for piece in _ALPHABET + ["##" + c for c in _ALPHABET]:  # the trainer adds "##c" only for chars it saw
            vocab.setdefault(piece, len(vocab))
        return BertTokenizerFast(vocab=vocab, do_lower_case=not spec.cased,
                                 strip_accents=not spec.cased, model_max_length=MODEL_MAX_LENGTH)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=spec.vocab_size, special_tokens=_XLMR_SPECIALS, unk_token="<unk>", initial_alphabet=_ALPHABET,
        show_progress=False))
    vocab = [tuple(p) for p in json.loads(tok.to_str())["model"]["vocab"]]
    return XLMRobertaTokenizerFast(vocab=vocab, model_max_length=MODEL_MAX_LENGTH)


def _model_classes(spec: TinySpec, tokenizer):
    from transformers import (BertConfig, BertForMaskedLM, BertModel, XLMRobertaConfig, XLMRobertaForMaskedLM,
                              XLMRobertaModel)

    shape = dict(vocab_size=len(tokenizer), hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                 num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
                 pad_token_id=tokenizer.pad_token_id)
    if spec.family == "bert":
        return BertConfig(max_position_embeddings=512, **shape), BertForMaskedLM, BertModel
    # RoBERTa positions start after padding_idx, hence 512 usable + 2
    return (XLMRobertaConfig(max_position_embeddings=514, type_vocab_size=1, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, **shape),
            XLMRobertaForMaskedLM, XLMRobertaModel)


def _blocks(tokenizer, texts: list[str]) -> torch.Tensor:
    """The corpus as one token stream cut into full-length blocks (no padding wasted on short sentences)."""
    ids = [i for row in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in row]
    width = SEQ_LEN - 2
    stream = torch.tensor(ids[: len(ids) // width * width], dtype=torch.long).view(-1, width)
    n = stream.shape[0]
    return torch.cat([torch.full((n, 1), tokenizer.cls_token_id), stream,
                      torch.full((n, 1), tokenizer.sep_token_id)], dim=1)


def _masked_loss(mlm, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """MLM cross-entropy with the vocabulary projection applied to the masked positions only: the
    same loss as the model's own, a quarter less compute per step."""
    hidden = mlm.base_model(input_ids=batch["input_ids"]).last_hidden_state
    keep = batch["labels"] != -100
    head = mlm.lm_head if mlm.config.model_type == "xlm-roberta" else mlm.cls
    return torch.nn.functional.cross_entropy(head(hidden[keep]), batch["labels"][keep])


def _unigram_loss(train: torch.Tensor, held_out: dict[str, torch.Tensor], vocab: int) -> float:
    """The held-out loss of predicting token frequencies alone: an MLM below it has learned to use context."""
    logp = (torch.bincount(train.flatten(), minlength=vocab).double() + 0.5).log()
    labels = held_out["labels"][held_out["labels"] != -100]
    return float(logp.logsumexp(0) - logp[labels].mean())


def _pretrain(spec: TinySpec, tokenizer, texts: list[str], steps: int):
    """Short MLM pretraining; returns the encoder (with a pooler, so classifiers load it without
    missing weights) and held-out losses."""
    from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    config, mlm_cls, base_cls = _model_classes(spec, tokenizer)
    # no dropout in a run this short: it learns faster and ~25% cheaper per step; the saved config
    # keeps the standard 0.1 for fine-tuning
    mlm_config = copy.deepcopy(config)
    mlm_config.hidden_dropout_prob = mlm_config.attention_probs_dropout_prob = 0.0
    mlm = mlm_cls(mlm_config)
    blocks = _blocks(tokenizer, texts)
    if blocks.shape[0] <= EVAL_BLOCKS:
        raise RuntimeError(f"tiny corpus too small for MLM: {blocks.shape[0]} blocks of {SEQ_LEN} tokens")
    # masking draws from the (forked, seeded) global RNG: a collator `seed` refuses to run outside
    # the main process, e.g. in a multiprocessing worker
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    held_out = collate(list(blocks[:EVAL_BLOCKS]))
    train = blocks[EVAL_BLOCKS:]
    # 2e-3 is near the edge for these sizes: 3e-3 stalled at the unigram loss
    opt = torch.optim.AdamW(mlm.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.98), eps=1e-6)
    sched = get_linear_schedule_with_warmup(opt, max(1, steps // 10), max(1, steps))
    mlm.eval()
    with torch.no_grad():
        before = _masked_loss(mlm, held_out).item()
    mlm.train()
    for _ in range(steps):
        _masked_loss(mlm, collate(list(train[torch.randint(len(train), (BATCH_SIZE,))]))).backward()
        torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    mlm.eval()
    with torch.no_grad():
        after = _masked_loss(mlm, held_out).item()
    encoder = base_cls(config)
    missing, unexpected = encoder.load_state_dict(mlm.base_model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise RuntimeError(f"MLM base does not match the encoder: missing {missing}, unexpected {unexpected}")
    stats = {"mlm_loss_before": round(before, 4), "mlm_loss_after": round(after, 4),
             "unigram_loss": round(_unigram_loss(train, held_out, len(tokenizer)), 4),
             "train_blocks": int(train.shape[0])}
    return encoder, stats


def _build(name: str, spec: TinySpec, steps: int, corpora, out: Path) -> None:
    """One thread: the MLM run then depends on the seed and the tokenizer only, not on the core count,
    and it does not collapse when it shares the CPUs (two spinning intra-op threads on a busy 2-core
    box ran 3-8x slower than one)."""
    t0, c0, threads = time.perf_counter(), time.process_time(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's seeded RNG stream must not depend on cache state
            torch.manual_seed(spec.seed)
            tokenizer = _train_tokenizer(spec, corpora[0])
            encoder, stats = _pretrain(spec, tokenizer, corpora[1], steps)
    finally:
        torch.set_num_threads(threads)
    encoder.save_pretrained(out)  # transformers v5 always writes safetensors
    tokenizer.save_pretrained(out)
    meta = {"name": name, "build_version": BUILD_VERSION, "spec": dataclasses.asdict(spec),
            "mlm_steps": steps, "vocab_size": len(tokenizer), **stats,
            "build_seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
    (out / "dsgkd_tiny.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def tiny_dir(name: str) -> Path:
    """Where the stand-in lives (or will), without building it: its name carries the content key, so
    anything keyed on this path (e.g. a teacher-signal cache) changes when the stand-in does."""
    spec = TINY_SPECS[name]
    steps = _steps(spec)
    return cache_root() / "models" / f"{name}-{_cache_key(name, spec, steps, _corpora(spec))[:12]}"


def ensure_tiny(name: str) -> Path:
    """The stand-in's model directory, built on first use. Concurrent callers (Ray trials, test
    workers) serialise on a lock file and re-check, and a build only becomes visible by an atomic
    rename, so a reader never sees a half-written directory."""
    final = tiny_dir(name)
    if (final / "dsgkd_tiny.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "dsgkd_tiny.json").is_file():
            return final
        spec = TINY_SPECS[name]
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            _build(name, spec, _steps(spec), _corpora(spec), tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
