"""Search-space YAML: what `dsgkd search` samples, validated before Ray starts.

A space is a `base` RunConfig of fixed settings, the teacher/student `pairs`, `params` (dotted RunConfig
keys mapped to Optuna distributions), the layer-map strategies to try, and the budget / ASHA / metric
settings. Every dotted key and every value a distribution can produce is checked against the same
RunConfig models a single run uses, so a typo or an impossible range is an exit-2 error with the file and
field path, never a trial that fails an hour into a search.

Optuna needs one fixed choice set per parameter name, but which layer maps are valid depends on the pair's
depths. So the define-by-run function samples ``pair`` first and then ``layer_map/<pair>``, a name per
pair whose choices are only the strategies valid for that pair; `SearchSpace.trial_to_overrides` folds
that back into ``distill.layer_map``.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from dsgkd.config import RunConfig, describe_validation_error, read_yaml
from dsgkd.constants import VALIDATION_METRICS, direction
from dsgkd.core.layer_maps import resolve_layer_map
from dsgkd.core.terms import conditions, kd_off, paper_weights
from dsgkd.errors import UserError
from dsgkd.search.dists import CategoricalDist, Distribution, Scalar, Strict, as_declared
from dsgkd.search.samplers import SAMPLERS

# Chosen per pair (pairs, layer_maps), so searching them as plain params would bypass the depth checks.
RESERVED = {"teacher.ref": "pairs", "student.ref": "pairs", "distill.layer_map": "layer_maps"}


class Pair(Strict):
    teacher: str
    student: str
    name: str | None = Field(None, description="label in results (default: last path parts, 'kmbert-tiny>xlmr-tiny')")

    @property
    def key(self) -> str:
        return self.name or f"{_short(self.teacher)}>{_short(self.student)}"


KEEP_CHECKPOINTS = 2  # finished trials that keep their checkpoint when neither keep_checkpoints nor reselect says


class Reselect(Strict):
    """Noise-aware selection: the best `top_k` finished KD-on trials are trained again on `seeds` fresh seeds
    (validation only) and export picks by the mean, because the search's own value of the best trial was
    chosen for being high (a single seed's luck counts in it)."""

    top_k: int = Field(ge=1, description="best finished KD-on trials (by the search metric) to re-run")
    seeds: int = Field(ge=1, description="fresh seeds per trial: its train.seed + 1 ... + seeds")


class Budget(Strict):
    num_samples: int = Field(8, ge=1, description="trials, the seeded ones included")
    workers_per_trial: int = Field(1, ge=1, description="Ray Train (DDP) workers of one trial")
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    max_concurrent: int | None = Field(
        None, ge=1, description="override the concurrency computed from the cluster (autoscaling clusters)")
    trial_retries: int = Field(1, ge=0, description="Tune-level retries of a failed trial")
    worker_retries: int = Field(1, ge=0, description="Train-level restarts of a trial's worker group")
    reselect: Reselect | None = Field(None, description="re-run the best trials on fresh seeds after the search")
    keep_checkpoints: int | None = Field(
        None, ge=0, description="finished trials that keep their checkpoint, the best KD-on ones by the search "
                                f"metric; the others keep only their results (default: reselect.top_k, else "
                                f"{KEEP_CHECKPOINTS})")

    @model_validator(mode="after")
    def _check_reselect(self) -> "Budget":
        if self.reselect and self.reselect.top_k > self.num_samples:
            raise ValueError(f"reselect.top_k {self.reselect.top_k} > num_samples {self.num_samples}")
        return self

    @property
    def kept_checkpoints(self) -> int:
        """How many finished trials keep their checkpoint: a finished trial is never trained again (resume
        retries only errored ones), so a checkpoint is worth its gigabytes only for the trials export may pick."""
        if self.keep_checkpoints is not None:
            return self.keep_checkpoints
        return self.reselect.top_k if self.reselect else KEEP_CHECKPOINTS


class Asha(Strict):
    enabled: bool = Field(True, description="false: no early stopping, every trial runs all its epochs")
    grace_period: int = Field(1, ge=1, description="epochs before a trial can be stopped")
    reduction_factor: float = Field(2, gt=1)
    max_t: int | None = Field(None, ge=1, description="default: base.train.epochs")


class SearchSpace(Strict):
    base: RunConfig = RunConfig()
    pairs: list[Pair] = Field(min_length=1)
    params: dict[str, Distribution] = {}
    layer_maps: list[str] = Field(["all"], min_length=1)
    budget: Budget = Budget()
    asha: Asha = Asha()
    metric: str = Field(
        description="what ASHA and Optuna rank by; default val_<base.train.select_metric>")
    mode: Literal["max", "min"]
    second_objective: str | None = Field(
        None, description="a second validation metric (e.g. val_brier) for a two-objective Optuna study, scored at "
                          "each trial's best epoch by `metric`; ASHA and export keep ranking by `metric`")
    seed: int = 0
    sampler: Literal[SAMPLERS] = Field(
        "tpe", description="Optuna sampler (seeded by `seed`): tpe, tpe-multivariate, gp or random")
    startup_trials: int | None = Field(None, ge=1, description="random trials before TPE / GP model the results "
                                       "(default: a third of budget.num_samples, 2 to 10)")
    include_paper_defaults: bool = Field(True, description="trial 0: alpha 0.6, beta 0.2, no logit KD, all layers")
    include_control: bool = Field(False, description="one KD-off trial (alpha = beta = gamma = 0) per pair")
    start_points: list[dict[str, Scalar]] = Field(
        [], description="trials evaluated before sampling, per pair: {param: value}; unset params take the base "
                        "value when the distribution holds it, else are sampled")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """metric from the engine's select_metric (each trial keeps the best epoch by it), mode from metric."""
        if not isinstance(data, dict):
            return data
        base, select = data.get("base"), "auroc"
        if isinstance(base, RunConfig):
            select = base.train.select_metric
        elif isinstance(base, dict) and isinstance(base.get("train"), dict):
            select = base["train"].get("select_metric", select)
        metric = data.get("metric") or f"val_{select}"
        if metric != f"val_{select}":
            raise ValueError(f"metric {metric} but base.train.select_metric {select}: each trial keeps its best "
                             f"epoch by select_metric, so set base.train.select_metric: {metric.removeprefix('val_')}")
        mode = direction(metric)
        if data.get("mode") not in (None, mode):
            raise ValueError(f"mode {data['mode']}: {metric} is better when {'lower' if mode == 'min' else 'higher'}")
        return {**data, "metric": metric, "mode": mode}

    @model_validator(mode="after")
    def _check(self) -> "SearchSpace":
        names = [p.key for p in self.pairs]
        for name in names:
            if "/" in name or not name:
                raise ValueError(f"pairs: name {name!r} must be non-empty and contain no '/'; set pairs[].name")
        if len(set(names)) != len(names):
            raise ValueError(f"pairs: repeated pair {sorted(n for n in names if names.count(n) > 1)[0]!r}")
        if "auto" in self.layer_maps:  # it would sample 'all' or 'uniform' twice, under two names
            raise ValueError("layer_maps: 'auto' is a single run's default (all on equal depths, else uniform); "
                             "list the maps to search, e.g. [all, uniform]: each pair keeps those its depths allow")
        for key, dist in self.params.items():
            if key in RESERVED:
                raise ValueError(f"params.{key}: chosen by `{RESERVED[key]}`, not params")
            _check_setting(key)
            for v in dist.values():
                try:
                    self.base.with_overrides({key: v}, source=f"params.{key}={v!r}")
                except UserError as e:
                    raise ValueError(str(e)) from None
            self._require_gate(key)
        self._check_second_objective()
        if self.asha.grace_period > self.max_t:
            raise ValueError(f"asha.grace_period {self.asha.grace_period} > max_t {self.max_t}")
        if self.include_paper_defaults:
            self._require_point("include_paper_defaults", paper_weights())
        if self.include_control:
            self._require_point("include_control", kd_off())
        for i, point in enumerate(self.start_points):
            for key in point:
                if key not in self.params:
                    raise ValueError(f"start_points[{i}].{key}: not a searched param ({', '.join(self.params)})")
            self._require_point(f"start_points[{i}]", point)
        return self

    def _check_second_objective(self) -> None:
        """A name no epoch reports would leave every trial's second value missing: Optuna could store none."""
        second, known = self.second_objective, [f"val_{m}" for m in VALIDATION_METRICS]
        if second is None:
            return
        if second == self.metric:
            others = ", ".join(m for m in known if m != self.metric)
            raise ValueError(f"second_objective {second}: already the primary metric; choose another ({others})")
        if second not in known:
            hint = f"; did you mean val_{second}?" if f"val_{second}" in known else ""
            raise ValueError(f"second_objective {second}: not a validation metric (one of {', '.join(known)}){hint}")

    def _require_gate(self, key: str) -> None:
        """A searched setting whose gate is 0 in every trial cannot change any trial: refuse it by name."""
        if key not in (gates := conditions()):  # a KD term's option acts only where its weight is positive
            return
        gate, what = gates[key]
        declared = self.params.get(gate)
        values = declared.values() if declared else [setting(self.base, gate)]
        if not any(isinstance(v, (int, float)) and v > 0 for v in values):
            raise ValueError(f"params.{key}: cannot change any trial: {gate} is 0 in every trial ({what} off); "
                             f"drop it, or search {gate} (or set base.{gate} > 0)")

    def applies(self, key: str, values: dict[str, Any]) -> bool:
        """Whether searched `key` acts in a trial with these settings (a gate not in `values`: the base's)."""
        if key not in (gates := conditions()):
            return True
        return values.get(gates[key][0], setting(self.base, gates[key][0])) > 0

    def _require_point(self, flag: str, values: dict[str, float]) -> None:
        """A seeded point must lie inside the space: Optuna rejects an enqueued value outside a log range."""
        for key, v in values.items():
            dist = self.params.get(key)
            inside = dist.contains(v) if dist else setting(self.base, key) == v
            if not inside:
                where = f"params.{key}" if dist else f"base.{key} (not searched)"
                fix = f"; widen it or set {flag}: false" if flag.startswith("include_") else ""
                raise ValueError(f"{flag}: {key}={v} lies outside {where}{fix}")

    @property
    def n_startup(self) -> int:
        """Optuna's 10 random start-up trials would make a 3-trial search three random draws (at least 2 exist)."""
        return self.startup_trials or min(10, max(2, self.budget.num_samples // 3))

    @property
    def max_t(self) -> int:
        return self.asha.max_t or self.base.train.epochs

    @property
    def tuned_metric(self) -> str:
        """What Optuna and ASHA are told: the trial's best-so-far `metric` (the engine reports it every epoch).
        Tune hands a searcher the last report (ray #5459), so on `metric` itself a trial stopped early or past
        its peak would be stored worse than it reached, and TPE would learn from the wrong number."""
        return f"best_{self.metric}"

    @property
    def objectives(self) -> list[tuple[str, str, str]]:
        """(metric, what the study is told, mode) per objective: the primary's best-so-far value, then the second
        objective at the epoch that value came from (`<metric>_at_best`): the weights the trial keeps."""
        first = [(self.metric, self.tuned_metric, self.mode)]
        if self.second_objective is None:
            return first
        return first + [(self.second_objective, f"{self.second_objective}_at_best", direction(self.second_objective))]

    def pair(self, name: str) -> Pair:
        return next(p for p in self.pairs if p.key == name)

    def trial_to_overrides(self, config: dict[str, Any]) -> dict[str, Any]:
        """Tune's config for one trial (nested or '/'-flat) → dotted RunConfig overrides."""
        flat = dict(flatten_params(config))
        pair = self.pair(flat["pair"])
        out = {"teacher.ref": pair.teacher, "student.ref": pair.student,
               "distill.layer_map": flat[f"layer_map/{pair.key}"]}
        out.update({k: flat[k] for k in self.params if k in flat})
        return out

    def trial_config(self, config: dict[str, Any]) -> RunConfig:
        return self.base.with_overrides(self.trial_to_overrides(config), source="trial")

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False,
                              allow_unicode=True)


@dataclass(frozen=True)
class PairPlan:
    """One pair resolved against its depths: the layer maps it can use and the teacher states they read."""

    name: str
    teacher_layers: int
    student_layers: int
    layer_maps: list[str]

    @property
    def teacher_states(self) -> list[int]:
        return sorted({t for spec in self.layer_maps
                       for t, _ in resolve_layer_map(spec, self.teacher_layers, self.student_layers)})


class DefineByRun:
    """Optuna define-by-run space: pair, then that pair's layer maps, then `params` under their dotted keys.

    A class, not a closure, because OptunaSearch pickles its space into Tune's experiment checkpoint.
    """

    def __init__(self, space: SearchSpace, plans: dict[str, PairPlan]):
        self.conditions = {key: gate for key, (gate, _) in conditions().items()}
        self.params = dict(sorted(space.params.items(), key=lambda kv: kv[0] in self.conditions))  # gates first
        self.gates = {gate: setting(space.base, gate) for gate in self.conditions.values()}
        self.maps = {name: plan.layer_maps for name, plan in plans.items()}

    def __call__(self, trial) -> None:
        pair = trial.suggest_categorical("pair", list(self.maps))
        trial.suggest_categorical(f"layer_map/{pair}", self.maps[pair])
        values = dict(self.gates)
        for key, dist in self.params.items():
            if key not in self.conditions or values[self.conditions[key]] > 0:
                values[key] = dist.suggest(trial, key)


def load_space(path: str | os.PathLike) -> SearchSpace:
    return space_from_dict(read_yaml(path), source=str(path))


def space_from_dict(raw: dict[str, Any], source: str = "space") -> SearchSpace:
    try:
        return SearchSpace.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        if err["loc"]:
            raise UserError(f"{source}: {describe_validation_error(e)}") from None
        raise UserError(f"{source}: {err['msg'].removeprefix('Value error, ')}") from None


def resolve_pairs(space: SearchSpace, depth: Callable[[str], int]) -> dict[str, PairPlan]:
    """Each pair's valid layer maps; UserError when a pair has none or a strategy fits no pair."""
    plans, reasons = {}, {}
    for pair in space.pairs:
        n_t, n_s = depth(pair.teacher), depth(pair.student)
        valid = []
        for spec in space.layer_maps:
            try:
                resolve_layer_map(spec, n_t, n_s)
                valid.append(spec)
            except UserError as e:
                reasons.setdefault(spec, str(e))
        if not valid:
            raise UserError(f"pairs: no layer map in {space.layer_maps} is valid for {pair.key} "
                            f"(teacher {n_t} layers, student {n_s}): {reasons[space.layer_maps[0]]}")
        plans[pair.key] = PairPlan(pair.key, n_t, n_s, valid)
    for spec in space.layer_maps:
        if not any(spec in plan.layer_maps for plan in plans.values()):
            raise UserError(f"layer_maps: {spec!r} is valid for no pair ({reasons[spec]})")
    return plans


def seeded_points(space: SearchSpace, plans: dict[str, PairPlan]) -> list[dict[str, Any]]:
    """Trials evaluated before sampling: the paper's defaults first, then one KD-off control per pair, then
    the space's start points for every pair.

    Other searched settings take the base value when the distribution holds it, else Optuna samples them.
    """
    base = {k: setting(space.base, k) for k, d in space.params.items() if d.contains(setting(space.base, k))}
    points = []
    if space.include_paper_defaults:
        plan = next((p for p in plans.values() if "all" in p.layer_maps), next(iter(plans.values())))
        point = {"pair": plan.name, **base, **{k: v for k, v in paper_weights().items() if k in space.params}}
        if "all" in plan.layer_maps:
            point[f"layer_map/{plan.name}"] = "all"
        points.append(point)
    if space.include_control:
        points += [{"pair": name, **base, **{k: v for k, v in kd_off().items() if k in space.params}}
                   for name in plans]
    points += [{"pair": name, **base, **start} for start in space.start_points for name in plans]
    return [{k: as_declared(space.params.get(k), v) for k, v in p.items() if space.applies(k, p)} for p in points]


def categorical_variants(space: SearchSpace) -> list[tuple[str, RunConfig]]:
    """(pair, config) for every pair × combination of categorical choices: what the teacher cache can be asked for.

    Numeric parameters are left at their base values: they are weights and rates, not teacher inputs.
    """
    cats = {k: d.choices for k, d in space.params.items() if isinstance(d, CategoricalDist)}
    out = []
    for pair in space.pairs:
        for combo in itertools.product(*cats.values()):
            over = {"teacher.ref": pair.teacher, "student.ref": pair.student, **dict(zip(cats, combo))}
            try:
                out.append((pair.key, space.base.with_overrides(over)))
            except UserError:
                continue  # a combination no trial can run (e.g. logit KD without a fine-tuned teacher)
    return out


def _check_setting(key: str) -> None:
    """A dotted key names a setting of the default config (a registered KD term's own fields included)."""
    value: Any = RunConfig()
    for part in key.split("."):
        if not isinstance(value, BaseModel) or part not in {**type(value).model_fields, **(value.model_extra or {})}:
            raise ValueError(f"params.{key}: unknown RunConfig setting")
        value = getattr(value, part)
    if isinstance(value, BaseModel):
        raise ValueError(f"params.{key}: a section, not a setting")


def setting(cfg: RunConfig, key: str) -> Any:
    """The value of a dotted RunConfig key, e.g. setting(cfg, "distill.alpha")."""
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def flatten_params(d: dict[str, Any], prefix: str = ""):
    """Tune's nested config (`{"layer_map": {"a>b": ...}}`) as the flat names Optuna records (`layer_map/a>b`)."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flatten_params(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v


def _short(ref: str) -> str:
    return ref.rstrip("/").rsplit("/", 1)[-1]
