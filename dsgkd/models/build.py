"""Building a stand-in: train its tokenizer, pretrain a small MLM, save encoder and tokenizer.

`FAMILIES` holds what differs between Hugging Face model types (tokenizer kind, config, classes); a new
stand-in family is one decorated tokenizer trainer with its `models` function. `tiny` decides what to
build and where (and stays torch-free); this module does the building, called only on a cache miss.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import string
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from dsgkd.models.vocab import continuing_pieces, unigram_scores, word_counts
from dsgkd.progress import Progress
from dsgkd.registry import Registry

# every ASCII character gets a vocabulary entry, so English terms in a Korean-trained vocabulary split
# into pieces instead of collapsing to [UNK] (which would leave nothing to align)
_ALPHABET = list(string.ascii_letters + string.digits + string.punctuation)
_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# XLM-R's own ids for the first four (pad 1 is its position-embedding padding_idx); the transformers
# class hard-codes unk_id 3
_XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

# Hugging Face model_type -> fn(spec, texts, model_max_length) -> tokenizer, with options
# models(spec, tokenizer) -> (config, mlm class, encoder class) and head (the MLM head's attribute)
FAMILIES = Registry("stand-in family")


def _shape(spec, tokenizer) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
                pad_token_id=tokenizer.pad_token_id)


def _bert_models(spec, tokenizer):
    from transformers import BertConfig, BertForMaskedLM, BertModel

    return (BertConfig(max_position_embeddings=tokenizer.model_max_length, **_shape(spec, tokenizer)),
            BertForMaskedLM, BertModel)


def _xlmr_models(spec, tokenizer):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

    # RoBERTa positions start after padding_idx, hence padding_idx + 1 rows more than usable positions
    positions = tokenizer.model_max_length + tokenizer.pad_token_id + 1
    config = XLMRobertaConfig(max_position_embeddings=positions, type_vocab_size=1, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, **_shape(spec, tokenizer))
    return config, XLMRobertaForMaskedLM, XLMRobertaModel


@FAMILIES.register("bert", models=_bert_models, head="cls")
def bert_tokenizer(spec, texts: list[str], model_max_length: int):
    """Cased or uncased WordPiece (BERT, KM-BERT, BioBERT, KoBERT-style), the same on every machine
    (`dsgkd.models.vocab`)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=not spec.cased, strip_accents=not spec.cased)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=spec.vocab_size, special_tokens=_BERT_SPECIALS + continuing_pieces(texts, tok.normalizer),
        initial_alphabet=_ALPHABET, show_progress=False))
    vocab = tok.get_vocab()
    for piece in _ALPHABET + ["##" + c for c in _ALPHABET]:  # the trainer adds "##c" only for chars it saw
        vocab.setdefault(piece, len(vocab))
    return BertTokenizerFast(vocab=vocab, do_lower_case=not spec.cased,
                             strip_accents=not spec.cased, model_max_length=model_max_length)


@FAMILIES.register("xlm-roberta", models=_xlmr_models, head="lm_head")
def xlmr_tokenizer(spec, texts: list[str], model_max_length: int):
    """SentencePiece-style Unigram with a metaspace (XLM-R), scored the same on every machine
    (`dsgkd.models.vocab`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=spec.vocab_size, special_tokens=_XLMR_SPECIALS, unk_token="<unk>", initial_alphabet=_ALPHABET,
        show_progress=False))
    pieces = [p for p, _ in json.loads(tok.to_str())["model"]["vocab"] if p not in _XLMR_SPECIALS]
    scores = unigram_scores(pieces, word_counts(texts, tok.pre_tokenizer))
    vocab = [(p, 0.0) for p in _XLMR_SPECIALS] + sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return XLMRobertaTokenizerFast(vocab=vocab, model_max_length=model_max_length)


def _token_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    return torch.tensor([i for row in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in row],
                        dtype=torch.long)


def _blocks(tokenizer, stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """A token stream cut into full-length blocks (no padding wasted on short sentences)."""
    width = seq_len - 2
    rows = stream[: len(stream) // width * width].view(-1, width)
    n = rows.shape[0]
    return torch.cat([torch.full((n, 1), tokenizer.cls_token_id), rows,
                      torch.full((n, 1), tokenizer.sep_token_id)], dim=1)


def _masked_loss(mlm, head: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """MLM cross-entropy with the vocabulary projection applied to the masked positions only: the
    same loss as the model's own, a quarter less compute per step."""
    hidden = mlm.base_model(input_ids=batch["input_ids"]).last_hidden_state
    keep = batch["labels"] != -100
    return torch.nn.functional.cross_entropy(getattr(mlm, head)(hidden[keep]), batch["labels"][keep])


def _unigram_loss(train: torch.Tensor, held_out: dict[str, torch.Tensor], vocab: int) -> float:
    """The held-out loss of predicting token frequencies alone: an MLM below it has learned to use context."""
    logp = (torch.bincount(train.flatten(), minlength=vocab).double() + 0.5).log()
    labels = held_out["labels"][held_out["labels"] != -100]
    return float(logp.logsumexp(0) - logp[labels].mean())


def _pretrain(spec, tokenizer, texts: list[str], steps: int, recipe: dict, name: str = "stand-in"):
    """Short MLM pretraining; returns the encoder (with a pooler, so classifiers load it without
    missing weights) and held-out losses."""
    from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    family = FAMILIES[spec.family]
    config, mlm_cls, base_cls = family.options["models"](spec, tokenizer)
    head, eval_blocks = family.options["head"], recipe["eval_blocks"]
    # no dropout in a run this short: it learns faster and ~25% cheaper per step; the saved config
    # keeps the standard 0.1 for fine-tuning
    mlm_config = copy.deepcopy(config)
    mlm_config.hidden_dropout_prob = mlm_config.attention_probs_dropout_prob = 0.0
    mlm = mlm_cls(mlm_config)
    stream = _token_stream(tokenizer, texts)
    held_tokens = eval_blocks * (recipe["seq_len"] - 2)
    if len(stream) < 2 * held_tokens:
        raise RuntimeError(f"tiny corpus too small for MLM: {len(stream)} tokens")
    # masking draws from the (forked, seeded) global RNG: a collator `seed` refuses to run outside
    # the main process, e.g. in a multiprocessing worker
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    held_out = collate(list(_blocks(tokenizer, stream[:held_tokens], recipe["seq_len"])))
    # BERT's own schedule: short blocks for most steps (here 32 tokens: the same tokens per step as 16 x 64,
    # and the term probe reached in 1,200 steps what 4,000 steps of 64-token blocks gave), then long blocks
    # with the same tokens per step, so every position a note uses is trained
    train = _blocks(tokenizer, stream[held_tokens:], recipe["seq_len"])
    long_train = _blocks(tokenizer, stream[held_tokens:], recipe["long_seq_len"])
    long_batch = max(1, recipe["batch_size"] * recipe["seq_len"] // recipe["long_seq_len"])
    long_from = steps - round(steps * recipe["long_fraction"])
    # 2e-3 is near the edge for these sizes: 3e-3 stalled at the unigram loss
    opt = torch.optim.AdamW(mlm.parameters(), lr=recipe["lr"], weight_decay=0.01, betas=(0.9, 0.98), eps=1e-6)
    sched = get_linear_schedule_with_warmup(opt, max(1, steps // 10), max(1, steps))
    mlm.eval()
    with torch.no_grad():
        before = _masked_loss(mlm, head, held_out).item()
    mlm.train()
    with Progress(steps, f"{name}: MLM pretraining", "steps") as bar:  # builds run side by side: say which
        for step in range(steps):
            rows, size = (long_train, long_batch) if step >= long_from else (train, recipe["batch_size"])
            batch = collate(list(rows[torch.randint(len(rows), (size,))]))
            _masked_loss(mlm, head, batch).backward()
            torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            bar.update()
    mlm.eval()
    with torch.no_grad():
        after = _masked_loss(mlm, head, held_out).item()
    encoder = base_cls(config)
    missing, unexpected = encoder.load_state_dict(mlm.base_model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise RuntimeError(f"MLM base does not match the encoder: missing {missing}, unexpected {unexpected}")
    stats = {"mlm_loss_before": round(before, 4), "mlm_loss_after": round(after, 4),
             "unigram_loss": round(_unigram_loss(train, held_out, len(tokenizer)), 4),
             "train_blocks": int(train.shape[0])}
    return encoder, stats


def build_stand_in(spec, steps: int, corpora: tuple[list[str], list[str]], out: Path, *, recipe: dict,
                   name: str = "stand-in") -> dict:
    """Build into `out`; returns the build's record. One thread: the MLM run then depends on the seed and
    the tokenizer only, not on the core count, and it does not collapse when it shares the CPUs (two
    spinning intra-op threads on a busy 2-core box ran 3-8x slower than one)."""
    t0, c0, threads = time.perf_counter(), time.process_time(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the caller's seeded RNG stream must not depend on cache state; and a caller under no_grad (a probe
        # that loads a stand-in lazily, benchmarks/term_probe.py) must not turn the MLM's backward off
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(spec.seed)
            tokenizer = FAMILIES[spec.family].fn(spec, corpora[0], recipe["model_max_length"])
            encoder, stats = _pretrain(spec, tokenizer, corpora[1], steps, recipe, name)
    finally:
        torch.set_num_threads(threads)
    with quiet_progress():  # a 1 MB stand-in needs no "Writing model shards" bar in a table's or a search's log
        encoder.save_pretrained(out)  # transformers v5 always writes safetensors
        tokenizer.save_pretrained(out)
    return {"build_version": recipe["build_version"], "spec": dataclasses.asdict(spec), "mlm_steps": steps,
            "vocab_size": len(tokenizer), **stats, "build_seconds": round(time.perf_counter() - t0, 2),
            "cpu_seconds": round(time.process_time() - c0, 2)}


@contextmanager
def quiet_progress():
    """transformers' progress bars off for the block, then back as they were (never switched off for good: a
    user's own hub downloads keep theirs)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
