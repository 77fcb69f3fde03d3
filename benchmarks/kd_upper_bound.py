"""Can the KD path move knowledge at all? Students distilled from an oracle teacher signal vs their KD-off control.

The oracle signal is a teacher cache (the format trials read) whose pooled term vectors encode the world's true
severity: a word of a lexicon term gets `weight × scale × u` at every layer (one fixed unit direction `u`,
`scale` the real teacher's mean vector norm), every other selected word gets 0. No model could know more. If
students distilled from it gain nothing on the held-out-term test notes and their held-out-term probe does not
rise over the control's, the KD machinery itself (selection, pooling, projection, loss, schedule) cannot move
knowledge, whatever the teacher. Same notes, recipe, seeds and batches for every arm (the control keeps the
transfer notes, with no KD on them). `--arms oracle_kd,teacher_kd,random_kd` adds the pretrained teacher's own
signal and its random-init twin's: DSG-KD against its knowledge-free control on the same footing, without a
search. Prints one JSON object.

    python benchmarks/kd_upper_bound.py [--world default] [--seeds 0,1,2] [--epochs 3] [--alpha 1.0] [--arms ...]
                                        [--lr-encoder 1e-4 --lr-head 1e-3 --batch-size 16]
                                        [--sizes train=600,val=300,test=600,transfer=1500]
"""
import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import transformers
from sklearn.metrics import roc_auc_score

from dsgkd.config import RunConfig
from dsgkd.core.align import find_terms
from dsgkd.core.engine import fit
from dsgkd.core.teacher.cache import _sha256, read_meta
from dsgkd.data.benchmark import write_benchmark
from dsgkd.data.emr import load_splits
from dsgkd.data.world import get_world
from dsgkd.experiments.term_probe import severity_auroc, term_vectors
from dsgkd.models.tiny import stand_in_ref
from dsgkd.pipeline.note_store import train_pool
from dsgkd.pipeline.prepare import load_transfer
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teacher_cache import build_cache
from dsgkd.pipeline.teachers import prepare_run
from dsgkd.pipeline.train import test_predictions

GENERIC = {"syndrome", "disease", "palsy"}  # the second word of some multi-word terms: says nothing of severity


def term_weights(world) -> dict[str, float]:
    """Lower-cased word → severity weight of the lexicon term it names."""
    return {w.lower(): t.weight for t in world.terms for w in t.name.split() if w.lower() not in GENERIC}


def oracle_cache(cfg: RunConfig, layers: list[int], out: Path, world) -> Path:
    """A copy of the real teacher's cache for `cfg` with every pooled term vector replaced by the oracle's."""
    real = build_cache(cfg, layers, out / "real", source="pretrained", attention=False)
    oracle = out / "oracle"
    if (oracle / "meta.json").is_file():  # seed-independent: the pretrained teacher's layout, the world's truth
        return oracle
    shutil.copytree(real, oracle)
    texts = train_pool(cfg, load_splits(cfg.data), load_transfer(cfg), None)[0].texts  # notes truncated
    offsets = np.load(oracle / "train.term_offsets.npy")
    term_pos = np.load(oracle / "train.term_pos.npy")
    pooled = np.load(oracle / "train.pooled.npy", mmap_mode="r+")
    scale = float(np.linalg.norm(pooled[:, : min(len(term_pos), 5000)].astype(np.float32), axis=-1).mean())
    u = np.random.default_rng(0).standard_normal(pooled.shape[-1])
    u /= np.linalg.norm(u)
    weights, d = term_weights(world), cfg.distill
    hits = 0
    for i, text in enumerate(texts):
        spans = find_terms(text, d.selector, d.max_terms)
        for row in range(offsets[i], offsets[i + 1]):
            a, b = spans[term_pos[row]]
            w = weights.get(text[a:b].strip(".,;:()").lower(), 0.0)
            hits += w != 0
            pooled[:, row] = (w * scale * u).astype(np.float16)
    pooled.flush()
    meta = read_meta(oracle)
    meta["sha256"]["train.pooled.npy"] = _sha256(oracle / "train.pooled.npy")
    (oracle / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"oracle cache: {hits} of {len(term_pos)} distilled words are lexicon terms; scale {scale:.2f}",
          flush=True)
    return oracle


def signal_cache(arm: str, cfg: RunConfig, layers: list[int], out: Path, world) -> Path:
    """The teacher signal an arm distils: the oracle's, the pretrained teacher's own (what DSG-KD distils), or
    its random-init twin's (the knowledge-free control; drawn per seed)."""
    if arm == "oracle_kd":
        return oracle_cache(cfg, layers, out, world)
    if arm == "teacher_kd":
        return build_cache(cfg, layers, out / "teacher", source="pretrained", attention=False)
    twin = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"random_init": True})})
    return build_cache(twin, layers, out / "random", source="pretrained", attention=False)


def student_row(arm: str, cfg: RunConfig, cache: Path | None, held: np.ndarray, world, tmp: Path) -> dict:
    """Test AUROC (all notes, held-out-term notes) and the student's held-out-term severity probe."""
    result = fit(prepare_run(resolve_run(cfg), teacher_weights=cache is None),
                 teacher_cache={"pretrained": cache} if cache else None)
    y, p = test_predictions(result, cfg)
    folder = tmp / f"student-{arm}-{cfg.train.seed}"
    result.model.save_pretrained(folder)
    result.tokenizer.save_pretrained(folder)
    v = term_vectors(str(folder), False, [t.name for t in world.terms])
    severe, held_terms = np.array([t.severe for t in world.terms]), np.array([t.held_out for t in world.terms])
    return {"seed": cfg.train.seed, "test_auroc": round(float(roc_auc_score(y, p)), 4),
            "held_out_notes_auroc": round(float(roc_auc_score(y[held], p[held])), 4),
            "held_out_probe_last_layer": round(severity_auroc(v[:, -1], severe, held_terms), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="default")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr-encoder", type=float, default=1e-4)
    ap.add_argument("--lr-head", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=1.0, help="hidden-state KD weight of the oracle arm")
    ap.add_argument("--hidden-loss", default="mse")
    ap.add_argument("--layer-map", default="all")
    ap.add_argument("--no-control", action="store_true", help="leave out the KD-off control (already measured)")
    ap.add_argument("--hidden-view", default="raw", choices=["raw", "task"],
                    help="distill.hidden_view of every KD arm: raw (every coordinate) or task (the score of a probe "
                         "fitted on the labelled notes' term vectors)")
    ap.add_argument("--sizes", default="train=600,val=300,test=600,transfer=1500")
    ap.add_argument("--teacher", default="kmbert-tiny")
    ap.add_argument("--student", default="xlmr-tiny")
    ap.add_argument("--arms", default="oracle_kd", help="besides the KD-off control, comma-separated: oracle_kd "
                    "(the oracle signal), teacher_kd (the pretrained teacher: DSG-KD without a search), random_kd "
                    "(its random-init twin: the knowledge-free control)")
    a = ap.parse_args()
    transformers.logging.set_verbosity_error()  # one line per fit, not a load report per model
    transformers.utils.logging.disable_progress_bar()
    world = get_world(a.world)
    plain = world.name.partition(":")[0]
    sizes = {k: int(v) for k, v in (part.split("=") for part in a.sizes.split(","))}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = write_benchmark(tmp / "data", sizes, world=world.name)
        base = RunConfig().with_overrides({
            "data.path": data["train"], "data.val_path": data["val"], "data.test_path": data["test"],
            "data.transfer_path": data["transfer"], "data.max_transfer": sizes["transfer"],
            "data.text_col": "ER_DHX", "data.label_col": "LABEL", "data.group_col": "PT_ID",
            # the profile's stand-ins are the plain world's (the oracle replaces what the teacher knows; the
            # student's pretraining corpus is the same), so a profile does not rebuild them
            "teacher.ref": stand_in_ref(a.teacher, world.name if world.profile.corpus_permuted else plain),
            "student.ref": stand_in_ref(a.student, plain),
            "train.epochs": a.epochs, "train.lr_encoder": a.lr_encoder, "train.lr_head": a.lr_head,
            "train.batch_size": a.batch_size, "distill.alpha": a.alpha, "distill.beta": 0.0, "distill.gamma": 0.0,
            "distill.hidden_loss": a.hidden_loss, "distill.hidden_view": a.hidden_view,
            "distill.layer_map": a.layer_map})
        run = resolve_run(base)
        layers = sorted({t for t, _ in run.layer_pairs})
        held = pd.read_csv(data["test"])["HELD_OUT_TERM"].to_numpy() == 1
        arms = a.arms.split(",")
        rows: dict[str, list] = {**({} if a.no_control else {"control": []}), **{arm: [] for arm in arms}}
        for seed in (int(s) for s in a.seeds.split(",")):
            seeded = run.with_seed(seed).cfg
            if not a.no_control:
                rows["control"].append(student_row("control", run.control().with_seed(seed).cfg, None, held, world,
                                                   tmp))
            for arm in arms:
                cache = signal_cache(arm, seeded, layers, tmp / "caches", world)
                rows[arm].append(student_row(arm, seeded, cache, held, world, tmp))
            print(json.dumps({arm: r[-1] for arm, r in rows.items()}), flush=True)
    mean = {arm: {k: round(float(np.mean([r[k] for r in rs])), 4) for k in rs[0] if k != "seed"}
            for arm, rs in rows.items()}
    gain, probe_up = {}, {}
    if not a.no_control:
        gain = {arm: {k: round(mean[arm][k] - mean["control"][k], 4) for k in mean["control"]} for arm in arms}
        probe = {arm: [r["held_out_probe_last_layer"] for r in rs] for arm, rs in rows.items()}
        probe_up = {arm: f"{sum(o > c for o, c in zip(probe[arm], probe['control']))}/{len(probe['control'])}"
                    for arm in arms}
    print(json.dumps({"benchmark": "kd_upper_bound", "world": world.name, "sizes": sizes, "epochs": a.epochs,
                      "lr": [a.lr_encoder, a.lr_head], "batch_size": a.batch_size,
                      "alpha": a.alpha, "hidden_loss": a.hidden_loss, "hidden_view": a.hidden_view, "layer_map": a.layer_map, "pair": f"{a.teacher}>{a.student}",
                      "held_out_test_notes": int(held.sum()), "per_seed": rows, "mean": mean,
                      "minus_control": gain, "probe_up_in_seeds": probe_up}))


if __name__ == "__main__":
    main()
