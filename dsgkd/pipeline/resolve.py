"""A run resolved once, at the edge: the config as it will run, checked against its models' shapes.

The edges (`dsgkd train`, a Tune trial, a table row) turn flags, YAML and defaults into a `RunConfig` and call
`resolve_run` once; everything below (`prepare`, `fit`, the teachers, the writers) takes the `ResolvedRun` and
never re-validates it (docs/architecture.md, "Data path"). Each model's shape comes from its config (a stand-in's
spec, a checkpoint's config.json), so a bad ref, map or length is a one-line `UserError` within seconds, before
torch is imported, a stand-in built, a teacher fine-tuned or an output directory made. This is also where layer
map `auto` becomes the map it stands for, so that a run records the map it used.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from dsgkd.config import RunConfig
from dsgkd.core.layer_maps import named_layer_map, resolve_layer_map
from dsgkd.errors import UserError
from dsgkd.models.shape import ModelShape, model_shape


@dataclass(frozen=True)
class ResolvedRun:
    """A config whose refs, layer map and lengths were checked: `cfg.distill.layer_map` names the map `auto`
    stood for, `layer_pairs` is what it resolved to. Without KD the teacher is never loaded, so it has no shape
    here and no pairs."""

    cfg: RunConfig
    student: ModelShape
    teacher: ModelShape | None = None
    layer_pairs: tuple[tuple[int, int], ...] = ()

    def with_seed(self, seed: int) -> ResolvedRun:
        """The same run on another seed (nothing the shapes depend on changes)."""
        train = self.cfg.train.model_copy(update={"seed": seed})
        return replace(self, cfg=self.cfg.model_copy(update={"train": train}))

    def control(self) -> ResolvedRun:
        """The KD-off control of this run: every KD weight at zero, everything else equal."""
        return ResolvedRun(self.cfg.model_copy(update={"distill": self.cfg.distill.control()}), self.student)


def _check_length(cfg: RunConfig, shape: ModelShape, role: str, ref: str) -> None:
    if cfg.train.max_length > shape.max_length:
        raise UserError(f"train.max_length {cfg.train.max_length} exceeds {role} '{ref}' limit of "
                        f"{shape.max_length} tokens")


def resolve_run(cfg: RunConfig) -> ResolvedRun:
    """`cfg` checked against both models' shapes, with layer map `auto` replaced by the map it stands for."""
    student = model_shape(cfg.student.ref)
    _check_length(cfg, student, "student", cfg.student.ref)
    if not cfg.distill.kd_on:
        return ResolvedRun(cfg, student)
    teacher = model_shape(cfg.teacher.ref)
    _check_length(cfg, teacher, "teacher", cfg.teacher.ref)
    spec = named_layer_map(cfg.distill.layer_map, teacher.depth, student.depth)
    pairs = resolve_layer_map(spec, teacher.depth, student.depth)
    if spec != cfg.distill.layer_map:
        cfg = cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"layer_map": spec})})
    return ResolvedRun(cfg, student, teacher, tuple(pairs))
