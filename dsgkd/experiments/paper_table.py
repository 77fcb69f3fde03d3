"""`dsgkd table` (and benchmarks/paper_table.py): the DSG-KD paper's comparison on the embedded benchmark.

For each teacher→student pair, rows scored on one test split, each over the same training seeds:

- searched: the config `dsgkd search` + `dsgkd export` pick for the pair on validation AUROC;
- knowledge_free: the same search, with the same budget, its teacher randomly initialised (same shape,
  fine-tuned by the same recipe): what the KD machinery gives without any domain knowledge, or fluency;
- wrong_knowledge: the same search, with the same budget, its teacher the wrong-knowledge twin (the same stand-in
  pretrained the same way on a corpus stating permuted severities, `dsgkd.models.tiny.wrong_knowledge_twin`): as
  fluent, its knowledge wrong;
- searched_wrong_teacher / wrong_knowledge_true_teacher: each of those two searched configs with the other teacher,
  so the teacher's effect is read within a config, where neither search's luck can enter it;
- control: the searched config with every KD weight at zero, so it takes the same optimiser steps over the
  same batches (transfer notes included: they add no loss, only the steps they share with KD);
- paper: DSG-KD with the paper's settings (alpha 0.6, beta 0.2, all layers, MSE, Latin terms, no logit KD,
  labelled notes only, the pretrained teacher);
- teacher / random_teacher / wrong_teacher: the three teachers fine-tuned alone (the checkpoints logit KD reads);
- ngram: character n-gram TF-IDF + logistic regression (C chosen on validation), the bar the control must reach.

The protocol is fixed before the first run (`table_protocol`), the training recipe is the space's base for
every row and never searched, the searches rank by validation AUROC, each run keeps its best validation epoch,
takes its threshold from validation and predicts the test split once. The primary comparison, declared before
any run, crosses the two configs with the two fluent teachers: the teacher's effect on test AUROC within each
config (searched − searched_wrong_teacher, wrong_knowledge_true_teacher − wrong_knowledge), claimed only where both
show it. The random-init control failed as a negative control (docs/levers.md: a fluent teacher with permuted
knowledge beat it by +0.028, p 0.004, for biobert-tiny → xlmr-tiny), and one search per arm put two searches' luck
into the difference (`benchmarks/search_luck.py`). Statistics are in `table_stats`, the markdown in
`table_render`. Every run lands in its own directory and is skipped when complete, so a re-run resumes.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from dsgkd.config import RunConfig
from dsgkd.constants import PAPER, SEARCH_SPACES
from dsgkd.data.benchmark import REPORTED_SEEDS  # disjoint from `dsgkd synth`'s default seed 0
from dsgkd.errors import UserError
from dsgkd.experiments import recipe
from dsgkd.experiments import table_stats as stats
from dsgkd.experiments.table_protocol import (DEFAULT_PAIRS, DEFAULT_WORLD, check_protocol, check_results,
                                              code_version, make_protocol, preflight, record_protocol,
                                              saved_protocol)
from dsgkd.experiments.table_clock import TableClock
from dsgkd.experiments.table_jobs import link_teachers, run_groups, run_jobs, teacher_jobs, write_scored
from dsgkd.experiments.table_record import check_stand_ins
from dsgkd.experiments.table_reuse import Reuse
from dsgkd.experiments.table_render import write_report
from dsgkd.experiments.table_selector import mine_table_lexicon, with_mined_selector
from dsgkd.experiments.term_probe import teacher_probes
from dsgkd.progress import ENV as PROGRESS_ENV
from dsgkd.redact import mask
from dsgkd.search.space import SearchSpace, load_space
from dsgkd.storage import atomic_write_text

SPACE = SEARCH_SPACES / "paper_table.yaml"
CURVE_ROWS = stats.primary_rows()  # the rows the learning curve re-runs at each size


# ------------------------------------------------------------------------------------------- data
def make_data(out: Path, sizes: dict[str, int], world: str | None = None) -> dict[str, str]:
    """The benchmark's files (the splits named in `sizes`) of one world (`dsgkd.data.benchmark`): each from its
    own generator seed, the test split from the one drawn after the design was frozen, training notes without
    the world's held-out terms, transfer notes without labels."""
    from dsgkd.data.benchmark import write_benchmark

    return write_benchmark(out, sizes, world=world or DEFAULT_WORLD, seeds=REPORTED_SEEDS)


def world_pairs(pairs, world: str | None):
    """The space's pairs on `world`'s stand-ins (`name@world`: they learnt from that world's corpora), under
    their default-world keys, so results.json names a pair the same on every world."""
    from dsgkd.models.tiny import split_ref, stand_in_ref

    if world in (None, DEFAULT_WORLD):
        return pairs
    moved = []
    for p in pairs:
        refs = [stand_in_ref(r, world) if split_ref(r) else r for r in (p.teacher, p.student)]
        moved.append(p.model_copy(update={"teacher": refs[0], "student": refs[1], "name": p.key}))
    return moved


def table_space(space: SearchSpace, data: dict[str, str]) -> SearchSpace:
    base = space.base.with_overrides({"data.path": data["train"], "data.val_path": data["val"],
                                      "data.test_path": data["test"], "data.transfer_path": data["transfer"]})
    return space.model_copy(update={"base": base})


def held_out_mask(cfg: RunConfig) -> np.ndarray | None:
    """Per test note (in the order runs predict them), whether it contains a term the labelled training notes
    never show: the generator's `HELD_OUT_TERM` column (0/1); None when the test file has no such column."""
    from dsgkd.data.emr import read_table

    d = cfg.data
    df = read_table(d.test_path, d.encoding)
    if stats.HELD_OUT_COL not in df.columns:
        return None
    keep = df[d.text_col].fillna("").astype(str).str.strip() != ""  # the notes load_labelled keeps
    values = df.loc[keep, stats.HELD_OUT_COL].astype(str).str.strip().str.lower()
    bad = ~values.isin(["0", "1", "0.0", "1.0", "true", "false"])
    if bad.any():
        raise UserError(f"{d.test_path}: column '{stats.HELD_OUT_COL}' holds {mask(values[bad].iloc[0])} at "
                        f"data row {int(values[bad].index[0]) + 1}; expected 0 or 1")
    return values.isin(["1", "1.0", "true"]).to_numpy()


# ------------------------------------------------------------------------------------- n-gram reference
def ngram_row(cfg: RunConfig, out: Path) -> None:
    """The n-gram reference on the table's notes, once (it has no training seed)."""
    from dsgkd.data.emr import load_splits
    from dsgkd.pipeline.train import staged_output
    from dsgkd.report.reference import ngram_reference

    if (out / "metrics.json").is_file():
        return
    ref = ngram_reference(load_splits(cfg.data), threshold_rule=cfg.eval.threshold, n_boot=cfg.eval.n_bootstrap)
    with staged_output(out, overwrite=True) as stage:
        write_scored(stage, ref["test_labels"], ref["test_probs"], ref["threshold"], cfg, C=ref["C"],
                     val_auroc=ref["val_auroc"])


def row_configs(base: RunConfig, searched: RunConfig, knowledge_free: RunConfig,
                wrong_knowledge: RunConfig) -> dict[str, RunConfig]:
    """The trained rows. The control is the searched config with every KD weight at zero: same notes (transfer
    notes too), same recipe, so the same seed gives it the same batches and optimiser steps. The paper maps
    every layer index to index; where depths differ, every student layer to its proportional teacher layer
    (`uniform`), the nearest thing to "all layers": what `auto` names. The two crossed rows swap the teacher of
    the searched and the wrong-knowledge configs and change nothing else."""
    from dsgkd.core.layer_maps import named_layer_map
    from dsgkd.models.shape import model_depth

    if not knowledge_free.teacher.random_init:
        raise ValueError("the knowledge-free row needs a config searched with teacher.random_init: true")
    true_ref, twin = searched.teacher.ref, wrong_knowledge.teacher.ref
    if twin == true_ref or wrong_knowledge.teacher.random_init:
        raise ValueError("the wrong-knowledge row needs a config searched with the teacher's pretrained twin")
    spec = named_layer_map("auto", model_depth(base.teacher.ref), model_depth(base.student.ref))
    paper = base.with_overrides({**PAPER, "distill.layer_map": spec})
    return {"control": searched.model_copy(update={"distill": searched.distill.control()}),
            "knowledge_free": knowledge_free, "searched": searched, "paper": paper, "wrong_knowledge": wrong_knowledge,
            "searched_wrong_teacher": searched.with_overrides({"teacher.ref": twin}),
            "wrong_knowledge_true_teacher": wrong_knowledge.with_overrides({"teacher.ref": true_ref})}


def shares_batches(a: RunConfig, b: RunConfig) -> bool:
    """Same labelled notes, same student, same recipe: one seed then means one head init and one order of labelled
    batches. Mixed batching interleaves the transfer notes, so the transfer notes must match too; `alongside` batches
    the labelled notes as a run without transfer notes does, so a row with them (searched) and one without (paper)
    still pair."""
    def notes(cfg: RunConfig):
        alongside = cfg.train.transfer_batching == "alongside"
        return cfg.data.model_copy(update={"transfer_path": None}) if alongside else cfg.data
    return notes(a) == notes(b) and a.student == b.student and a.train == b.train


def layer_maps_for(space: SearchSpace, pair) -> list[str]:
    """The space's layer maps this pair's depths allow (a one-pair search rejects a map no pair can use)."""
    from dsgkd.core.layer_maps import is_valid
    from dsgkd.models.shape import model_depth

    depths = model_depth(pair.teacher), model_depth(pair.student)
    return [m for m in space.layer_maps if is_valid(m, *depths)]


def searched_config(space: SearchSpace, out: Path, trials: int | None, reuse: Reuse | None = None) -> RunConfig:
    """Search the pair on validation AUROC and export the best KD trial (resumes an interrupted search; takes an
    earlier table's best config where it ran this very search, `reuse`)."""
    from dsgkd.report.export import export_best
    from dsgkd.search.tune import search

    if not (out / "best.yaml").is_file() and not (reuse is not None and reuse.search(space, out, trials)):
        search(space, out, resume=(out / "tune").is_dir(), num_samples=None if (out / "tune").is_dir() else trials)
        export_best(out)
    return RunConfig.from_yaml(out / "best.yaml").model_copy(update={"provenance": None})


def pair_searches(space: SearchSpace, pair, pair_dir: Path, trials: int | None, reuse: Reuse | None = None
                  ) -> tuple[RunConfig, RunConfig, RunConfig]:
    """The searched row's search and each control's own: same space, budget and seed, the teacher randomly
    initialised in the second, its wrong-knowledge twin in the third."""
    from dsgkd.models.tiny import wrong_knowledge_twin

    pair_space = space.model_copy(update={"pairs": [pair], "layer_maps": layer_maps_for(space, pair)})
    random_space = pair_space.model_copy(update={"base": pair_space.base.with_overrides({"teacher.random_init": True})})
    twin = wrong_knowledge_twin(pair.teacher)
    wrong_space = pair_space.model_copy(update={"pairs": [pair.model_copy(update={"teacher": twin, "name": pair.key})],
                                                "base": pair_space.base.with_overrides({"teacher.ref": twin})})
    print(f"==> search {pair.key} (pretrained teacher)", flush=True)
    searched = searched_config(pair_space, pair_dir / "search", trials, reuse)
    print(f"==> search {pair.key} (random-init teacher: the knowledge-free control)", flush=True)
    knowledge_free = searched_config(random_space, pair_dir / "search_knowledge_free", trials, reuse)
    print(f"==> search {pair.key} (wrong-knowledge twin {twin}: the fluent control)", flush=True)
    return searched, knowledge_free, searched_config(wrong_space, pair_dir / "search_wrong_knowledge", trials, reuse)


def pair_dirname(key: str) -> str:
    return key.replace(">", "__")


def describe(cfg: RunConfig) -> str:
    d = cfg.distill
    view = "its label-probe score" if d.hidden_view == "task" else d.hidden_loss
    return (f"alpha {d.alpha:.3g} ({view}, {d.hidden_teacher} teacher, layer map `{d.layer_map}`, "
            f"selector `{d.selector}`), beta {d.beta:.3g} ({d.attention_teacher} teacher), gamma {d.gamma:.3g} at "
            f"T {d.temperature:.3g}, fine-tuned teacher made {cfg.teacher.finetune}, transfer notes "
            f"{'yes' if cfg.data.transfer_path else 'no'}")


# ---------------------------------------------------------------------------------------- summary
def read_pair(pair_dir: Path, seeds: list[int], rows, ngram_dir: Path | None = None
              ) -> tuple[np.ndarray, dict[str, stats.Runs]]:
    runs = {}
    for row in rows:
        y, runs[row] = stats.read_runs([pair_dir / row / f"seed_{s}" for s in seeds])
    if ngram_dir is not None:
        _, runs["ngram"] = stats.read_runs([ngram_dir], deterministic=True)
    return y, runs


def curve_runs(out: Path, n: int, chosen, configs: dict, seeds: list[int], sizes: dict, world: str | None,
               workers: int, n_boot: int, held_out, teacher_cache: bool = True, reuse: Reuse | None = None) -> dict:
    """The primary comparison's two rows at `n` labelled training notes (same validation, test and transfer
    notes, the configs searched at the table's size); the table's own size reuses its rows."""
    if n == sizes["train"]:
        point = {}
        for pair in chosen:
            y, runs = read_pair(out / pair_dirname(pair.key), seeds, CURVE_ROWS)
            point[pair.key] = stats.curve_point(y, runs, paired=configs[pair.key]["paired"], held_out=held_out,
                                                n_boot=n_boot)
        return point
    train = make_data(out / "curve" / f"n{n}" / "data", {"train": n}, world)["train"]
    point, jobs = {}, []
    for pair in chosen:
        for row in CURVE_ROWS:
            cfg = configs[pair.key]["rows"][row].with_overrides({"data.path": train})
            jobs += [("student", cfg.with_overrides({"train.seed": s}),
                      out / "curve" / f"n{n}" / pair_dirname(pair.key) / row / f"seed_{s}") for s in seeds]
    print(f"==> learning curve: {n} labelled notes", flush=True)
    run_jobs(jobs, workers, world, out / "curve" / f"n{n}" if teacher_cache else None, reuse)
    for pair in chosen:
        y, runs = read_pair(out / "curve" / f"n{n}" / pair_dirname(pair.key), seeds, CURVE_ROWS)
        point[pair.key] = stats.curve_point(y, runs, paired=configs[pair.key]["paired"], held_out=held_out,
                                            n_boot=n_boot)
    return point


# ------------------------------------------------------------------------------------------- main
def table_protocol(space_path: Path, *, world, sizes, seeds, trials) -> dict:
    return make_protocol(world=world, data_seeds={k: REPORTED_SEEDS[k] for k in sizes}, sizes=sizes, seeds=seeds,
                         trials=trials, space_path=space_path, primary=stats.PRIMARY)


def choose_pairs(space: SearchSpace, pairs: list[str] | str | None) -> list:
    """The space's pairs named in `pairs`; "all" for every one; None for the published table (DEFAULT_PAIRS,
    or every pair of a space that has none of them)."""
    if pairs == "all":
        return list(space.pairs)
    if pairs is None:
        return [p for p in space.pairs if p.key in DEFAULT_PAIRS] or list(space.pairs)
    chosen = [p for p in space.pairs if p.key in pairs]
    if len(chosen) != len(set(pairs)):
        raise UserError(f"--pairs: unknown pair in {pairs}; the space has {[p.key for p in space.pairs]}")
    return chosen


def run_table(out: Path, *, seeds: list[int], trials: int | None, workers: int, sizes: dict[str, int],
              pairs: list[str] | str | None, results_path: Path | None, space_path: Path = SPACE,
              world: str | None = None, curve: list[int] | None = None, command: str = "dsgkd table",
              teacher_cache: bool = True, reuse: Path | None = None) -> dict:
    from dsgkd.data.world import get_world
    from dsgkd.models.tiny import ensure_all, wrong_knowledge_twin

    import transformers

    transformers.utils.logging.disable_progress_bar()  # the teacher probes load models in this process too
    os.environ.setdefault(PROGRESS_ENV, "0")  # hundreds of fits side by side: one line per finished run instead
    code = code_version()  # the code this invocation started with, not what it ends beside
    get_world(world or DEFAULT_WORLD)  # a bad world name is one line before anything is written
    space = load_space(space_path)
    chosen = world_pairs(choose_pairs(space, pairs), world)
    out = out.resolve()
    protocol = table_protocol(space_path, world=world, sizes=sizes, seeds=seeds,
                              trials=trials or space.budget.num_samples)
    check_protocol(out, protocol)
    reuser = Reuse(reuse, out) if reuse is not None else None  # a bad --reuse stops before anything is written
    previous = json.loads((out / "results.json").read_text(encoding="utf-8")) if (out / "results.json").is_file() else None
    if previous is not None:
        check_results(out, previous)
    data = make_data(out / "data", sizes, world)
    record_protocol(out, protocol)
    clock = TableClock(out, {"command": command, "date": time.strftime("%Y-%m-%d"), "code": code,
                             "teacher_cache": teacher_cache})
    checks = preflight(data, world, len(seeds))
    space = with_mined_selector(table_space(space, data), mine_table_lexicon(data, world, out / "data"))
    base = space.base
    check_stand_ins(out, ensure_all({r for p in chosen
                                     for r in (p.teacher, wrong_knowledge_twin(p.teacher), p.student)}))
    if reuser is not None:
        reuser.check_stand_ins()
    print("==> n-gram reference", flush=True)
    ngram_row(base, out / "ngram")
    clock.lap("data, stand-ins and n-gram")
    print("==> recipe per model, on validation (KD off, design seeds)", flush=True)
    models = sorted({r for p in chosen for r in (p.teacher, p.student)})
    students = {p.student for p in chosen}
    run_jobs([job for ref in models for job in recipe.grid_jobs(base, ref, out / "recipe", student=ref in students)],
             workers, world, reuse=reuser)
    recipes = {ref: recipe.choose(ref, out / "recipe", base, student=ref in students) for ref in models}
    clock.lap("recipe grid")
    # the searches first, then the teachers fine-tuned alone and the rows seed by seed: a table that outlives its
    # machine resumes from its record (table_record), which keeps finished runs and searches but neither the Ray
    # trials of a search in flight nor any fine-tuned teacher, so a cut-off search starts again and only the seed
    # in flight re-fine-tunes the teachers its logit KD reads
    searched = {}
    for pair in chosen:
        pair_base = recipe.with_recipes(base, pair.teacher, pair.student, recipes)
        searched[pair.key] = pair_searches(space.model_copy(update={"base": pair_base}), pair,
                                           out / pair_dirname(pair.key), trials, reuser)
        clock.lap(f"searches {pair.key}")
    held_out = held_out_mask(base)
    results, configs = dict(previous["pairs"]) if previous else {}, {}
    for pair in chosen:
        rows = row_configs(recipe.with_recipes(base, pair.teacher, pair.student, recipes), *searched[pair.key])
        paired = {name: all(shares_batches(rows[a[0]], rows[r]) for r in (*a, *b))
                  for name, (a, b) in stats.COMPARISONS.items()}
        configs[pair.key] = {"rows": rows, "paired": paired[stats.PRIMARY], "comparisons_paired": paired}
    for seed in seeds:
        print(f"==> seed {seed}: the teachers fine-tuned alone (pretrained, random-init, wrong-knowledge twin) "
              "and the rows", flush=True)
        groups = []
        for pair in chosen:
            pair_dir = out / pair_dirname(pair.key)
            teachers = teacher_jobs(recipe.with_recipes(base, pair.teacher, None, recipes), out, pair.teacher,
                                    [seed])
            rows = [("student", cfg.with_overrides({"train.seed": seed}), pair_dir / row / f"seed_{seed}")
                    for row, cfg in configs[pair.key]["rows"].items()]
            groups.append((teachers + rows, pair_dir if teacher_cache else None))
        run_groups(groups, workers, world, reuser)
    clock.lap("teachers and rows, seed by seed")
    for pair in chosen:
        pair_dir, rows, paired = (out / pair_dirname(pair.key), configs[pair.key]["rows"],
                                  configs[pair.key]["comparisons_paired"])
        link_teachers(out, pair, pair_dir, seeds)
        y, runs = read_pair(pair_dir, seeds, (*stats.TRAINED_ROWS, *stats.TEACHER_ROWS), out / "ngram")
        results[pair.key] = {**stats.summarise_pair(y, runs, paired, held_out=held_out, n_boot=base.eval.n_bootstrap),
                             "configs": {row: describe(rows[row]) for row in ("searched", "knowledge_free",
                                                                              "wrong_knowledge")},
                             "pretrained_teacher_probe": teacher_probes(pair.teacher, world)}
    stats.holm_across_pairs(results)
    curve_results = dict(previous.get("curve", {})) if previous else {}
    for n in curve or []:
        point = curve_runs(out, n, chosen, configs, seeds, sizes, world, workers, base.eval.n_bootstrap, held_out,
                           teacher_cache, reuser)
        curve_results[str(n)] = {**curve_results.get(str(n), {}), **point}
        clock.lap(f"learning curve n={n}")
    runs_so_far = previous["meta"]["invocations"] if previous else []
    meta = {"invocations": [*runs_so_far, *clock.invocations()],
            "machine": f"{os.cpu_count()} CPU cores, no GPU", "recipe": base.train.model_dump(mode="json"),
            "teacher_recipe": {k: getattr(base.teacher, k) for k in
                               ("finetune_epochs", "finetune_lr_encoder", "finetune_lr_head")},
            "reused": [*(previous["meta"].get("reused", []) if previous else []),
                       *([reuser.record()] if reuser is not None else [])]}
    saved = {"protocol": saved_protocol(out), "meta": meta, **checks, "recipes": recipes, "pairs": results,
             **({"curve": curve_results} if curve_results else {})}
    atomic_write_text(out / "results.json", json.dumps(saved, indent=1))
    clock.close()
    print(write_report(out, results_path))
    return saved
