"""Search-space YAML: validation errors name the file and field, layer maps are resolved per pair, and a
define-by-run Optuna study only ever samples configs a trial can run. No Ray here."""
from pathlib import Path

import optuna
import pytest
import yaml

from dsgkd.errors import UserError
from dsgkd.core.layer_maps import is_valid
from dsgkd.search.samplers import SAMPLERS, make_sampler
from dsgkd.search.space import DefineByRun, load_space, resolve_pairs, seeded_points, space_from_dict

ROOT = Path(__file__).resolve().parents[2]
DEPTHS = {"kmbert-tiny": 4, "biobert-tiny": 6, "xlmr-tiny": 4, "kobert-tiny": 2, "kmbert-demo": 4, "biobert-demo": 6}
FOUR_PAIRS = [{"teacher": t, "student": s}
              for t in ("kmbert-tiny", "biobert-tiny") for s in ("xlmr-tiny", "kobert-tiny")]


def space(**over):
    raw = {"pairs": FOUR_PAIRS,
           "base": {"teacher": {"finetune": True}},
           "params": {"distill.temperature": {"type": "float", "low": 1.0, "high": 8.0, "log": True},
                      "distill.gamma": {"type": "categorical", "choices": [0.0, 1.0]},
                      "distill.alpha": {"type": "float", "low": 0.0, "high": 1.0},
                      "distill.beta": {"type": "categorical", "choices": [0.0, 0.2, 0.5]},
                      "train.lr_encoder": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
                      "distill.projection": {"type": "categorical", "choices": ["auto", "linear"]},
                      "distill.selector": {"type": "categorical", "choices": ["latin", "all"]}},
           "layer_maps": ["all", "uniform", "skip", "last_k:2", "first_last", "0:0,6:4"]}
    raw["base"] = {**raw["base"], **over.pop("base", {})}
    raw.update(over)
    return space_from_dict(raw)


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text, expected", [
    ("pairs: [{teacher: a, student: b}]\nbudgt: {num_samples: 3}\n", "budgt: unknown key"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.alfa: {type: float, low: 0, high: 1}}\n",
     "params.distill.alfa: unknown RunConfig setting"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.alpha: {type: uniform, low: 0, high: 1}}\n",
     "params.distill.alpha"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.temperature: {type: float, low: 0, high: 4, log: true}}\n",
     "log: true needs low > 0"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.temperature: {type: float, low: 0, high: 4}}\n",
     "distill.temperature: Input should be greater than 0"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.temperature: {type: float, low: 1, high: 4}}\n",
     "params.distill.temperature: cannot change any trial: distill.gamma is 0 in every trial (logit KD off)"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.gamma: {type: float, low: 0, high: 1}}\n",
     "needs teacher.finetune"),
    ("pairs: [{teacher: a, student: b}]\nparams: {teacher.ref: {type: categorical, choices: [a]}}\n",
     "chosen by `pairs`"),
    ("pairs: [{teacher: a, student: b}]\nbase: {train: {epochs: 2}}\nasha: {grace_period: 3}\n",
     "grace_period 3 > max_t 2"),
    ("pairs: [{teacher: a, student: b}]\nbase: {distill: {alpha: 0.1}}\n", "include_paper_defaults: distill.alpha=0.6"),
    ("pairs: [{teacher: a, student: b}]\ninclude_control: true\n", "include_control: distill.alpha=0.0"),
    ("pairs: [{teacher: a, student: b}, {teacher: a, student: b}]\n", "repeated pair 'a>b'"),
    ("pairs: [{teacher: a, student: b}]\nlayer_maps: [all, auto]\n", "layer_maps: 'auto' is a single run's default"),
    ("pairs: [{teacher: a, student: b}]\nstart_points: [{distill.beta: 0.1}]\n",
     "start_points[0].distill.beta: not a searched param"),
    ("pairs: [{teacher: a, student: b}]\nparams: {distill.alpha: {type: float, low: 0, high: 1}}\n"
     "start_points: [{distill.alpha: 2.0}]\n", "start_points[0]: distill.alpha=2.0 lies outside params.distill.alpha"),
    ("pairs: [{teacher: a, student: b}\n", "not valid YAML"),
    ("pairs: []\n", "pairs"),
    ("pairs: [{teacher: a, student: b}]\nmetric: val_f1\n", "set base.train.select_metric: f1"),
    ("pairs: [{teacher: a, student: b}]\nmode: min\n", "mode min: val_auroc is better when higher"),
    ("pairs: [{teacher: a, student: b}]\nsampler: cmaes\n", "sampler: Input should be 'tpe', 'tpe-multivariate'"),
])
def test_bad_space_is_one_line_user_error(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_space(path)
    msg = str(e.value)
    assert expected in msg and str(path) in msg and "\n" not in msg


def test_mode_follows_metric_and_max_t_defaults_to_epochs():
    s = space(base={"train": {"epochs": 7, "select_metric": "brier"}})
    assert s.mode == "min" and s.max_t == 7
    assert space().mode == "max"


def test_layer_maps_are_resolved_per_pair():
    plans = resolve_pairs(space(), DEPTHS.__getitem__)
    assert plans["kmbert-tiny>xlmr-tiny"].layer_maps == ["all", "uniform", "skip", "last_k:2", "first_last"]
    assert plans["biobert-tiny>kobert-tiny"].layer_maps == ["uniform", "skip", "last_k:2", "first_last"]
    assert "0:0,6:4" in plans["biobert-tiny>xlmr-tiny"].layer_maps  # only that pair has teacher 6, student 4
    for name, plan in plans.items():
        t, s = name.split(">")
        assert plan.layer_maps and all(is_valid(m, DEPTHS[t], DEPTHS[s]) for m in plan.layer_maps)
        assert plan.teacher_states == sorted(plan.teacher_states) and max(plan.teacher_states) <= DEPTHS[t]


def test_a_pair_without_a_valid_map_fails_before_search():
    with pytest.raises(UserError, match="no layer map .* valid for biobert-tiny>kobert-tiny"):
        resolve_pairs(space(layer_maps=["all"], pairs=[{"teacher": "biobert-tiny", "student": "kobert-tiny"}]),
                      DEPTHS.__getitem__)
    with pytest.raises(UserError, match="'last_k:9' is valid for no pair"):
        resolve_pairs(space(layer_maps=["uniform", "last_k:9"]), DEPTHS.__getitem__)
    with pytest.raises(UserError, match="'diagonal' is valid for no pair.*unknown"):
        resolve_pairs(space(layer_maps=["uniform", "diagonal"]), DEPTHS.__getitem__)


def test_define_by_run_samples_only_runnable_configs():
    s = space(include_control=True)
    plans = resolve_pairs(s, DEPTHS.__getitem__)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    points = seeded_points(s, plans)
    for point in points:
        study.enqueue_trial(point)
    space_fn = DefineByRun(s, plans)
    seen_pairs, seen_gammas = set(), set()
    for i in range(40):
        trial = study.ask()
        space_fn(trial)
        params = trial.params
        cfg = s.trial_config(params)  # re-validated by RunConfig
        pair = params["pair"]
        seen_pairs.add(pair)
        # a KD term's options are sampled only where its weight is on: the temperature where logit KD is, the
        # projection (hidden-state KD's) where alpha is; elsewhere they could change nothing
        gated = ({"distill.temperature"} if params["distill.gamma"] == 0 else set()) | (
            {"distill.projection"} if params["distill.alpha"] == 0 else set())
        assert set(params) == {"pair", f"layer_map/{pair}", *s.params} - gated
        seen_gammas.add(params["distill.gamma"])
        assert is_valid(cfg.distill.layer_map, DEPTHS[cfg.teacher.ref], DEPTHS[cfg.student.ref])
        assert f"{cfg.teacher.ref}>{cfg.student.ref}" == pair
        if i == 0:  # the paper's defaults
            d = cfg.distill
            assert (d.alpha, d.beta, d.gamma, d.layer_map) == (0.6, 0.2, 0.0, "all")
        elif i < len(points):  # KD-off controls, one per pair
            assert not cfg.distill.kd_on
        study.tell(trial, float(cfg.distill.alpha))
    assert seen_pairs == set(plans) and seen_gammas == {0.0, 1.0}
    assert len(points) == 1 + len(plans)


@pytest.mark.parametrize("second", [None, "val_brier"])
@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_runs_the_conditional_space_and_is_seeded(name, second):
    """Each sampler a space may name drives the define-by-run space (the temperature only where gamma > 0),
    past its start-up trials, and the same seed draws the same trials; with a second objective too (Optuna
    5.1's TPE, GP and random samplers all take a two-objective study, so no combination is refused)."""
    s = space(sampler=name, second_objective=second)
    plans = resolve_pairs(s, DEPTHS.__getitem__)

    def draws(seed):
        directions = ["maximize" if mode == "max" else "minimize" for _, _, mode in s.objectives]
        study = optuna.create_study(directions=directions, sampler=make_sampler(s.sampler, seed))
        out = []
        for _ in range(14 if second is None else 11):  # GP's 10 start-up trials, then one two-objective GP step
            trial = study.ask()
            DefineByRun(s, plans)(trial)
            assert ("distill.temperature" in trial.params) == (trial.params["distill.gamma"] > 0)
            out.append(trial.params)
            cfg = s.trial_config(trial.params)
            study.tell(trial, [cfg.distill.alpha, cfg.train.lr_encoder][:len(directions)])
        return out

    assert draws(0) == draws(0) != draws(1)


def test_trial_to_overrides_accepts_tunes_nested_config():
    s = space()
    nested = {"pair": "biobert-tiny>kobert-tiny", "layer_map": {"biobert-tiny>kobert-tiny": "skip"},
              "distill.alpha": 0.3, "distill.temperature": 2.0}
    over = s.trial_to_overrides(nested)
    assert over == {"teacher.ref": "biobert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "skip",
                    "distill.alpha": 0.3, "distill.temperature": 2.0}


@pytest.mark.parametrize("name", ["demo", "kmbert_xlmr", "kmbert_kobert", "biobert_xlmr", "biobert_kobert", "pairs",
                                  "paper_table"])
def test_shipped_spaces_validate(name):
    s = load_space(ROOT / "search_spaces" / f"{name}.yaml")
    depth = DEPTHS.get if name in ("demo", "paper_table") else (lambda ref: 12)
    plans = resolve_pairs(s, depth)
    assert seeded_points(s, plans)[0]["distill.alpha"] == (0.5 if name == "paper_table" else 0.6)
    raw = yaml.safe_load(s.dump_yaml())
    assert space_from_dict(raw) == s  # space.yaml round-trips
    if name == "pairs":
        assert len(plans) == 4


def test_start_points_are_evaluated_for_every_pair_after_the_paper_defaults():
    s = space(start_points=[{"distill.alpha": 0.5, "distill.selector": "all"}])
    plans = resolve_pairs(s, DEPTHS.__getitem__)
    points = seeded_points(s, plans)
    assert len(points) == 1 + len(plans)
    assert [p["pair"] for p in points[1:]] == list(plans)
    assert all(p["distill.alpha"] == 0.5 and p["distill.selector"] == "all" for p in points[1:])


def test_the_teacher_each_term_reads_is_searched_and_its_caches_planned():
    """`distill.hidden_teacher` is a searchable choice, gated by alpha; the caches a search builds cover every
    teacher some trial may read: the pretrained one for hidden-state KD where it is chosen and for attention KD,
    the fine-tuned one for logit KD and where hidden-state KD is pointed at it."""
    from dsgkd.search.caches import _attention, _sources
    from dsgkd.search.space import categorical_variants

    s = space(params={"distill.alpha": {"type": "float", "low": 0.0, "high": 1.0},
                      "distill.beta": {"type": "categorical", "choices": [0.0, 0.2]},
                      "distill.gamma": {"type": "categorical", "choices": [0.0, 1.0]},
                      "distill.hidden_teacher": {"type": "categorical", "choices": ["pretrained", "finetuned"]}},
              pairs=FOUR_PAIRS[:1], layer_maps=["all"], include_paper_defaults=False)
    variants = categorical_variants(s)
    assert {cfg.distill.hidden_teacher for _, cfg in variants} == {"pretrained", "finetuned"}
    assert set().union(*(_sources(s, cfg) for _, cfg in variants)) == {"pretrained", "finetuned"}
    assert all(_attention(s, cfg, "pretrained") and not _attention(s, cfg, "finetuned") for _, cfg in variants)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    DefineByRun(s, resolve_pairs(s, DEPTHS.__getitem__))(trial)
    assert ("distill.hidden_teacher" in trial.params) == (trial.params["distill.alpha"] > 0)
    with pytest.raises(UserError, match="hidden_teacher: finetuned needs teacher.finetune"):
        space(base={"teacher": {"finetune": False}}, params={
            "distill.hidden_teacher": {"type": "categorical", "choices": ["pretrained", "finetuned"]}})


def test_tpe_models_the_results_after_a_third_of_a_small_budget():
    """Optuna's 10 random start-up trials would make a 3-trial search three random draws: the start-up count is
    fitted to the budget (a third, 2 to 10) unless the space sets it, and reaches the sampler."""
    from dsgkd.search.samplers import make_sampler

    assert space(budget={"num_samples": 3}).n_startup == 2
    assert space(budget={"num_samples": 12}).n_startup == 4 and space(budget={"num_samples": 90}).n_startup == 10
    assert space(budget={"num_samples": 12}, startup_trials=7).n_startup == 7
    assert make_sampler("tpe", 0, 4)._n_startup_trials == 4 and make_sampler("gp", 0, 3)._n_startup_trials == 3
