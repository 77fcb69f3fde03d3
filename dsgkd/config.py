"""One pydantic config that flows from YAML / CLI flags through Ray Tune to the exported best config.

Every section forbids unknown keys, so a typo in a YAML file or a Tune parameter fails at load time
with the field's dotted path instead of being silently ignored. Named choices (hidden loss, selector,
threshold rule, selection metric, KD term) are checked against their registries (`dsgkd.choices`), and the
paper's settings are the defaults (`dsgkd.constants.PAPER`), but for the layer map: `auto` is the paper's `all` where the depths are
equal and `uniform` where `all` cannot run. Importing this module loads no torch.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dsgkd.choices import HIDDEN_LOSSES, KD_TERMS, SELECTORS, THRESHOLD_RULES
from dsgkd.constants import PAPER, SELECT_METRICS
from dsgkd.errors import UserError
from dsgkd.registry import Registry
from dsgkd.storage import atomic_write_text


def _named(registry: Registry, value: str) -> str:
    registry.lookup(value)
    return value


def _one_of(what: str, allowed, value: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the notes come from and how to split them."""

    path: str | None = Field(None, description="labelled notes (CSV / Parquet / JSONL / datasets dir)")
    val_path: str | None = None
    test_path: str | None = None
    text_col: str = "text"
    label_col: str = "label"
    group_col: str | None = Field(None, description="patient id: split group-wise so no patient is in two splits")
    encoding: str = "utf-8"
    classes: list[str] | None = Field(
        None, description="declared label values, negative first (default: 0/1)")
    label_names: list[str] | None = Field(
        None, description="names of classes 0 and 1 in the student's config.json (id2label), negative first, e.g. "
                          "[non-emergency, emergency] (default: the declared classes, else '0', '1')")
    val_frac: float = Field(0.15, gt=0, lt=0.5)
    test_frac: float = Field(0.15, gt=0, lt=0.5)
    split_seed: int = 0
    transfer_path: str | None = Field(
        None, description="unlabeled notes on which the KD terms (not the CE) are also computed")
    transfer_text_col: str | None = Field(None, description="text column of the transfer file (default: text_col)")
    max_transfer: int = Field(2000, ge=0, description="cap on transfer notes used per epoch")


    @field_validator("label_names")
    @classmethod
    def _two_names(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (len(v) != 2 or len(set(v)) != 2 or not all(n.strip() for n in v)):
            raise ValueError(f"expected two different, non-empty names (negative first), got {v}")
        return v


class TeacherConfig(_Section):
    ref: str = "kmbert-tiny"
    finetune: bool = Field(PAPER["teacher.finetune"], description="also make a copy of the teacher fine-tuned once on "
                           "the task (cached): what logit KD reads, and hidden-state / attention KD where "
                           "distill.hidden_teacher / attention_teacher say finetuned")
    random_init: bool = Field(PAPER["teacher.random_init"], description="knowledge-free control: same architecture, random weights")
    finetune_epochs: int = Field(10, ge=1)
    finetune_lr_encoder: float = Field(3e-4, gt=0, description="the teacher's own fine-tuning recipe, "
                                       "independent of the student's searched learning rates")
    finetune_lr_head: float = Field(3e-3, gt=0)
    finetune_floor: float = Field(0.6, ge=0, le=1, description="a fine-tune whose best validation AUROC stays "
                                  "below this has collapsed (2 of 10 kmbert-tiny seeds in the 2026-12-06 positive "
                                  "table) and is redone from another seeded draw; 0 turns the guard off")
    finetune_restarts: int = Field(2, ge=0, description="at most this many redrawn fine-tunes after a collapsed "
                                   "one; the best on validation is kept and every draw recorded")


class StudentConfig(_Section):
    ref: str = "xlmr-tiny"
    random_init: bool = Field(False, description="start from random weights (an ablation; also how a "
                              "random-init teacher is fine-tuned)")
    pooling: Literal["cls", "mean"] = Field(
        "cls", description="what the classification head reads: cls, the first token's state (Hugging Face's "
                           "heads); mean, the attention-masked mean of the last layer (dsgkd.models.pooling; stored "
                           "in the checkpoint's config.json and applied by dsgkd's loaders)")


class DistillConfig(_Section):
    """DSG-KD loss weights and choices (docs/architecture.md, "Losses and KD terms").

    Each weight belongs to one registered KD term (`dsgkd.choices.KD_TERMS`): the paper's three are declared
    here under the paper's names; a term added later declares its own `distill.<name>` fields, which this section
    then accepts. Every weight at zero is the KD-off control.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    alpha: float = Field(PAPER["distill.alpha"], ge=0, description="hidden-state KD weight")
    beta: float = Field(PAPER["distill.beta"], ge=0, description="word-level attention KD weight")
    gamma: float = Field(PAPER["distill.gamma"], ge=0, description="logit KD weight (needs teacher.finetune)")
    temperature: float = Field(1.0, gt=0)
    layer_map: str | list[tuple[int, int]] = Field(
        "auto", description="a LAYER_MAPS spelling or explicit pairs; auto: all on equal depths, else uniform "
                            "(a run records which)")
    hidden_loss: str = Field(PAPER["distill.hidden_loss"], description="a HIDDEN_LOSSES key")
    projection: Literal["auto", "linear"] = Field(
        PAPER["distill.projection"], description="auto: a learned linear map only when widths differ; linear: always")
    selector: str = Field(PAPER["distill.selector"], description="words distilled: a SELECTORS spelling")
    max_terms: int = Field(32, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _term_fields(cls, data: Any) -> Any:
        """The fields registered terms declare: checked when given, their default when not; any other key is
        unknown, as in every section."""
        if not isinstance(data, dict):
            return data
        declared = {name: spec for entry in KD_TERMS.entries.values() for name, spec in entry.fn.fields.items()}
        data = dict(data)
        for key in data:
            if key not in cls.model_fields and key not in declared:
                raise PydanticCustomError("unknown_key", "unknown key", {"key": key})
        for name, spec in declared.items():
            data[name] = _term_value(name, spec, data.get(name, spec.default))
        return data

    @field_validator("selector")
    @classmethod
    def _known_selector(cls, v: str) -> str:
        return _named(SELECTORS, v)

    @field_validator("hidden_loss")
    @classmethod
    def _known_hidden_loss(cls, v: str) -> str:
        return _named(HIDDEN_LOSSES, v)

    def weights(self) -> dict[str, float]:
        """KD term name → its weight."""
        return {entry.name: getattr(self, entry.fn.weight) for entry in KD_TERMS.entries.values()}

    @property
    def kd_on(self) -> bool:
        return any(w > 0 for w in self.weights().values())

    def control(self) -> "DistillConfig":
        """The KD-off control: identical settings with every KD weight at zero."""
        return self.model_copy(update={entry.fn.weight: 0.0 for entry in KD_TERMS.entries.values()})


def _term_value(name: str, spec, value: Any) -> Any:
    """A term-declared field's value, checked like a declared field's (a number at or above `spec.ge`)."""
    try:
        value = TypeAdapter(type(spec.default)).validate_python(value)
    except ValidationError as e:
        raise PydanticCustomError("term_field", "{key}: {msg}",
                                  {"key": name, "msg": e.errors()[0]["msg"]}) from None
    if spec.ge is not None and value < spec.ge:
        raise PydanticCustomError("term_field", "{key}: must be >= {ge}", {"key": name, "ge": spec.ge})
    if spec.choices is not None and value not in spec.choices:
        raise PydanticCustomError("term_field", "{key}: {value} is not one of {choices}",
                                  {"key": name, "value": repr(value), "choices": ", ".join(spec.choices)})
    return value


class TrainConfig(_Section):
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(128, ge=8)
    long_notes: Literal["truncate", "head_tail", "windows"] = Field(
        "truncate", description="notes longer than max_length: truncate; head_tail (the first and last tokens); "
                                "windows (overlapping windows, every term distilled, a note scored by its "
                                "highest-scoring window; dsgkd.core.long_notes)")
    lr_encoder: float = Field(1e-4, gt=0)
    lr_head: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.25, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    patience: int = Field(3, ge=1, description="epochs without validation improvement before stopping")
    select_metric: str = Field("auroc", description="validation metric that picks the best epoch")
    bucket: bool = Field(True, description="length-bucketed batches with dynamic padding")
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="autocast dtype: auto is bf16 on a CUDA card that has it, fp16 with a gradient scaler on "
                            "one that does not (V100, T4), fp32 elsewhere")
    grad_accum: int = Field(1, ge=1, description="batches per optimiser step: the effective batch is batch_size × "
                                                 "grad_accum × workers")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="the task loss's label smoothing (torch's "
                                   "cross_entropy): the non-KD way to soften hard labels, so a KD-off control can be "
                                   "given what logit KD from any teacher gives (a tuning choice, not distillation)")
    class_weight: Literal["none", "balanced"] | float = Field(
        "none", description="the task loss's class weights: none; balanced (n / (2 n_class) from the labelled "
                            "training notes); or a number, the positive class's weight against 1")
    restart_floor: float = Field(0.0, ge=0, le=1, description="a run whose best validation AUROC stays below this "
                                 "never left the label prior and is redrawn (a new head initialisation and batch "
                                 "order), the best draw on validation kept; 0 (the default) turns the guard off. "
                                 "Applies to `dsgkd train` and the table's rows, not to a search's trials")
    restarts: int = Field(2, ge=0, description="at most this many redraws after a run below train.restart_floor")
    transfer_batching: Literal["mixed", "alongside"] = Field(
        "mixed", description="where the unlabelled transfer notes go: mixed (shuffled into one pool with the labelled "
                             "notes, batched whether KD is on or off); alongside (each step takes a batch of labelled "
                             "notes and, when KD is on, a share of transfer notes beside it, so a KD-off run is a "
                             "plain fine-tune and every run takes the same steps over the same labelled batches)")

    @field_validator("class_weight", mode="before")
    @classmethod
    def _weight_spelling(cls, v):
        if isinstance(v, str) and v in ("none", "balanced"):
            return v
        try:
            weight = float("nan") if isinstance(v, bool) else float(v)  # `true` is a YAML slip, not a weight of 1
        except (TypeError, ValueError):
            weight = float("nan")
        if not 0 < weight < float("inf"):
            raise ValueError(f"class_weight {v!r}: none, balanced or a positive number")
        return weight

    @field_validator("select_metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        return _one_of("select metric", SELECT_METRICS, v)

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"unknown device {v!r}; expected auto, cpu, cuda, cuda:N or mps")
        return v


class EvalConfig(_Section):
    threshold: str = Field("f1", description="a THRESHOLD_RULES key: how validation picks the cut-off")
    n_bootstrap: int = Field(1000, ge=10)

    @field_validator("threshold")
    @classmethod
    def _known_rule(cls, v: str) -> str:
        return _named(THRESHOLD_RULES, v)


class SeedValues(_Section):
    """The exported trial's re-runs on fresh seeds (`budget.reselect`): export picked it by their mean."""

    seeds: list[int]
    values: list[float]
    mean: float
    std: float | None = None


class Provenance(_Section):
    """Where an exported config came from (filled by `dsgkd export`). `value`, `epoch` and `seed` are the
    search's own run of the trial; `reselect` holds its re-runs when export picked by their mean."""

    run: str | None = None
    trial_id: str | None = None
    metric: str | None = None
    value: float | None = None
    epoch: int | None = None
    dsgkd_version: str | None = None
    data_fingerprint: str | None = None
    seed: int | None = None
    reselect: SeedValues | None = None


class RunConfig(_Section):
    # built per config, so a KD term registered after import brings its fields to every new config
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    provenance: Provenance | None = None

    @model_validator(mode="after")
    def _finetuned_reads_need_finetune(self) -> "RunConfig":
        """A term on that reads the fine-tuned teacher needs one to be made."""
        if self.teacher.finetune:
            return self
        for entry in KD_TERMS.entries.values():
            term = entry.fn()
            if getattr(self.distill, term.weight) <= 0 or term.source(self.distill) != "finetuned":
                continue
            if term.needs_task_head:
                raise ValueError(f"distill.{term.weight} > 0 needs teacher.finetune: true ({term.label} needs a "
                                 "teacher with a task head)")
            raise ValueError(f"distill.{term.source_field}: finetuned needs teacher.finetune: true (or "
                             f"distill.{term.weight}: 0)")
        return self

    # ------------------------------------------------------------------ YAML
    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "RunConfig":
        return cls.from_dict(read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "RunConfig":
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise UserError(f"{source}: {describe_validation_error(e)}") from None

    def to_yaml(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.dump_yaml())

    def dump_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False,
                              allow_unicode=True)

    def with_overrides(self, dotted: dict[str, Any], source: str = "flags") -> "RunConfig":
        """Apply `{"distill.alpha": 0.3, ...}` (CLI flags, Tune parameters) and re-validate."""
        raw = self.model_dump(mode="json")
        for key, value in dotted.items():
            node = raw
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[leaf] = value
        return RunConfig.from_dict(raw, source=source)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{p}:{where} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: not UTF-8 text") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def describe_validation_error(e: ValidationError) -> str:
    """First error of a pydantic ValidationError as `field.path: message` on one line."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] in ("extra_forbidden", "unknown_key"):
        msg = "unknown key"
    if err["type"] in ("unknown_key", "term_field"):  # raised by a section's own validator: the key is in ctx
        loc = f"{loc}.{err['ctx']['key']}" if loc else err["ctx"]["key"]
        msg = msg.removeprefix(f"{err['ctx']['key']}: ")
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{loc or 'config'}: {msg}{more}"
