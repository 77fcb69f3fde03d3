"""Offline stand-ins for the real teacher/student families, built here because no hub is reachable.

Each stand-in copies what matters to DSG-KD about its family: the tokenizer kind (cased / uncased
WordPiece, SentencePiece Unigram), a different depth and width (so layer maps and projections are
exercised), and where its knowledge comes from: teachers get a short MLM pretraining on the clinical
domain corpus, students on general Korean prose only, so they read the notes but do not know what the
clinical terms mean.

A stand-in is cached with its tokenizer in one directory, keyed by everything that shapes it (spec,
world, corpus content, step count, BUILD_VERSION), so a tokenizer can never be paired with another build's
embeddings. A build is deterministic (its vocabulary by `dsgkd.models.vocab`, the MLM on one thread from its
seed): the same key gives the same weights and vocabulary on any machine of one kind; before BUILD_VERSION 5 the tokenizer
trainers made every build different.

A stand-in learns from one synthetic world's corpora (`dsgkd.data.world`): `kmbert-tiny` from the default
world's, `kmbert-tiny@w2` from world w2's, so a benchmark on a new world gets teachers that know that world.
A world's profile is part of its name (`dsgkd.data.profiles`): `kmbert-tiny@w2:negative` learns from w2's
negative corpus (severities permuted), `kmbert-tiny@default:negative` from the default world's; their corpora
differ, so their content keys and directories do too.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import functools
import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.storage import staged_dir

# bump when the build recipe changes in a way the constants below do not show; 5: vocabularies the same on every
# machine (models.vocab), so a stand-in rebuilt elsewhere is the same model
BUILD_VERSION = 5
SEQ_LEN = 32
BATCH_SIZE = 32
LONG_SEQ_LEN = 128  # the last LONG_FRACTION of the MLM steps, at the same tokens per step
LONG_FRACTION = 0.1
LR = 2e-3
MODEL_MAX_LENGTH = 512  # the stand-ins' length limit: tokenizer model_max_length = usable position rows
EVAL_BLOCKS = 64


@dataclass(frozen=True)
class TinySpec:
    """Corpus counts are (domain sentences, general sentences), taken from the front of each corpus."""

    family: str  # Hugging Face model_type: a `dsgkd.models.build.FAMILIES` key
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
    # KM-BERT: uncased Korean medical BERT; NFD turns Hangul into jamo, as in real uncased vocabularies.
    # Teachers get 2.25x the MLM steps: on the default world's 300 terms, kmbert-tiny's term vectors separate
    # severe from mild at 0.76-0.78 after 1,200 steps, 0.89-0.93 (held-out terms 0.93-0.94) after 1,800 and
    # 0.94-0.95 after 2,400 (benchmarks/term_probe.py); 1,800 keeps a cold demo near 5 minutes. A domain
    # teacher that knows little would make DSG-KD untestable.
    "kmbert-tiny": TinySpec("bert", cased=False, layers=4, hidden=128, heads=4, intermediate=256, vocab_size=4000,
                            tokenizer_corpus=(8000, 2000), mlm_corpus=(8000, 2000), mlm_steps=1800),
    "biobert-tiny": TinySpec("bert", cased=True, layers=6, hidden=96, heads=4, intermediate=192, vocab_size=3000,
                             tokenizer_corpus=(8000, 0), mlm_corpus=(8000, 0), mlm_steps=1800),
    # students see a little clinical text only in their tokenizer corpus, as multilingual vocabularies do
    "xlmr-tiny": TinySpec("xlm-roberta", cased=True, layers=4, hidden=64, heads=4, intermediate=128,
                          vocab_size=4000, tokenizer_corpus=(3000, 8000), mlm_corpus=(0, 8000)),
    "kobert-tiny": TinySpec("bert", cased=True, layers=2, hidden=96, heads=4, intermediate=192, vocab_size=3000,
                            tokenizer_corpus=(1000, 8000), mlm_corpus=(0, 8000)),
}
# The demo's teachers: the same models with two-thirds of the MLM steps, so a cold `dsgkd demo` (every stand-in
# built first) fits in five minutes on 2 cores; the tables keep 1,800. They know the default world's terms less
# well (`DSGKD_CACHE=<the demo's> python benchmarks/term_probe.py --models kmbert-demo,biobert-demo`, severity AUROC
# per layer, all / held-out terms): kmbert-demo 0.70-0.73 / 0.77-0.82, biobert-demo 0.68-0.72 / 0.66-0.77, against
# kmbert-tiny 0.91-0.93 / 0.94-0.96 and biobert-tiny 0.84-0.88 / 0.89-0.93 at 1,800 steps; at 900 steps (the
# same probe with DSGKD_TINY_STEPS=900) 0.62-0.63, at 600 0.58: too little for a teacher worth distilling.
TINY_SPECS |= {f"{name.removesuffix('-tiny')}-demo": dataclasses.replace(TINY_SPECS[name], mlm_steps=1200)
               for name in ("kmbert-tiny", "biobert-tiny")}


def split_ref(ref: str) -> tuple[str, str] | None:
    """(stand-in name, world) of a stand-in reference (`name`, `name@world` or `name@world:profile`); None
    for anything else."""
    from dsgkd.data.world import DEFAULT

    name, _, world = ref.partition("@")
    return (name, world or DEFAULT) if name in TINY_SPECS and (world or "@" not in ref) else None


def stand_in_ref(name: str, world: str) -> str:
    from dsgkd.data.world import DEFAULT

    return name if world == DEFAULT else f"{name}@{world}"


def wrong_knowledge_twin(ref: str) -> str:
    """The stand-in `ref` pretrained the same way on its world's corpus with the severities permuted
    (`dsgkd.data.profiles.wrong_knowledge_profile`): as fluent, its term knowledge wrong. Stand-ins only: no hub
    model has such a twin."""
    from dsgkd.data.profiles import wrong_knowledge_profile
    from dsgkd.data.world import get_world

    parts = split_ref(ref)
    if parts is None:
        raise UserError(f"{ref!r}: only a stand-in teacher has a wrong-knowledge twin (e.g. kmbert-tiny@w2)")
    name, world = parts
    w = get_world(world)
    return stand_in_ref(name, f"{w.base}:{wrong_knowledge_profile(w.profile.name)}")


def cache_root() -> Path:
    return Path(os.environ.get("DSGKD_CACHE") or Path.home() / ".cache" / "dsgkd")


def _steps(spec: TinySpec) -> int:
    override = os.environ.get("DSGKD_TINY_STEPS")
    return int(override) if override else spec.mlm_steps


def _corpora(spec: TinySpec, world: str) -> tuple[list[str], list[str]]:
    """Tokenizer texts and MLM texts; both corpora are generated once at the largest size needed."""
    from dsgkd.data.synthetic import generate_domain_corpus, generate_general_corpus

    n_dom = max(spec.tokenizer_corpus[0], spec.mlm_corpus[0])
    n_gen = max(spec.tokenizer_corpus[1], spec.mlm_corpus[1])
    dom = generate_domain_corpus(n_dom, seed=spec.seed, world=world) if n_dom else []
    gen = generate_general_corpus(n_gen, seed=spec.seed, world=world) if n_gen else []

    def take(counts: tuple[int, int]) -> list[str]:
        return dom[: counts[0]] + gen[: counts[1]]

    return take(spec.tokenizer_corpus), take(spec.mlm_corpus)


def _recipe() -> dict:
    """The build constants a stand-in's key and its build share."""
    return {"build_version": BUILD_VERSION, "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "lr": LR,
            "long_seq_len": LONG_SEQ_LEN, "long_fraction": LONG_FRACTION,
            "model_max_length": MODEL_MAX_LENGTH, "eval_blocks": EVAL_BLOCKS}


def _cache_key(ref: str, spec: TinySpec, steps: int, corpora: tuple[list[str], list[str]]) -> str:
    # the corpus text itself is hashed, so an edited generator can never hand back a stale model
    h = hashlib.sha256()
    h.update(json.dumps({"name": ref, "spec": dataclasses.asdict(spec), "steps": steps, **_recipe()},
                        sort_keys=True).encode())
    for texts in corpora:
        h.update(b"\x00corpus")
        for t in texts:
            h.update(t.encode("utf-8") + b"\x00")
    return h.hexdigest()


def _build(name: str, spec: TinySpec, steps: int, corpora, out: Path) -> None:
    """Build into `out`, ending with the marker file (dsgkd_tiny.json) that makes a directory a stand-in."""
    from dsgkd.models.build import build_stand_in  # torch and the MLM run, only on a cache miss

    meta = build_stand_in(spec, steps, corpora, out, recipe=_recipe(), name=name)
    (out / "dsgkd_tiny.json").write_text(json.dumps({"name": name, **meta}, indent=2) + "\n", encoding="utf-8")


def tiny_dir(ref: str) -> Path:
    """Where the stand-in `ref` (`name` or `name@world`) lives (or will), without building it: its name
    carries the content key, so anything keyed on this path (e.g. a teacher-signal cache) changes when the
    stand-in does."""
    spec = TINY_SPECS[split_ref(ref)[0]]
    folder = ref.replace("@", "-").replace(":", "-")  # the content key keeps `w2:negative` apart from `w2-negative`
    return cache_root() / "models" / f"{folder}-{_content_key(ref, _steps(spec))[:12]}"


@functools.lru_cache(maxsize=64)
def _content_key(ref: str, steps: int) -> str:
    """Generating the corpora to hash them takes about a second; a process asks for the same few often."""
    name, world = split_ref(ref)
    spec = TINY_SPECS[name]
    return _cache_key(ref, spec, steps, _corpora(spec, world))


def ensure_tiny(ref: str, *, log=None) -> Path:
    """The stand-in's model directory, built on first use. Concurrent callers (Ray trials, test
    workers) serialise on a lock file and re-check, and a build only becomes visible by an atomic
    rename, so a reader never sees a half-written directory."""
    final = tiny_dir(ref)
    if (final / "dsgkd_tiny.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "dsgkd_tiny.json").is_file():
            return final
        name, world = split_ref(ref)
        spec = TINY_SPECS[name]
        if log:
            log(f"  {ref}: building ({_steps(spec)} MLM steps)")
        with staged_dir(final) as stage:
            _build(ref, spec, _steps(spec), _corpora(spec, world), stage)
    return final


def _build_one(name: str) -> tuple[str, float]:
    started = time.time()
    ensure_tiny(name, log=lambda line: print(line, flush=True))
    return name, time.time() - started


def ensure_all(names, *, workers: int | None = None, log=print) -> dict[str, Path]:
    """Every stand-in in `names`, the missing ones built side by side (each build runs on one thread, so
    a 2-core machine builds two at once), the costliest first so the slowest one starts at once."""
    missing = sorted({n for n in names if not (tiny_dir(n) / "dsgkd_tiny.json").is_file()},
                     key=lambda n: -_cost(TINY_SPECS[split_ref(n)[0]]))
    workers = max(1, min(workers or os.cpu_count() or 1, len(missing)))
    if len(missing) > 1 and workers > 1:
        # spawn: a forked child would inherit the parent's torch threads and locks
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for name, seconds in pool.map(_build_one, missing):
                log(f"  {name}: built in {seconds:.0f} s")
    else:
        for name in missing:
            log(f"  {name}: built in {_build_one(name)[1]:.0f} s")
    return {n: ensure_tiny(n) for n in names}


def _cost(spec: TinySpec) -> float:
    """A build's relative cost: steps × layers × width (the MLM's share dominates every build)."""
    return _steps(spec) * spec.layers * spec.hidden
