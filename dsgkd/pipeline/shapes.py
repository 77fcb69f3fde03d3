"""A run checked against its models' shapes before anything slow, from their configs alone.

The layer map against both depths, `max_length` against both models' limits: each model's shape comes from
its config (a stand-in's spec, a checkpoint's config.json), so a bad ref, map or length is a one-line
`UserError` within seconds, before torch is imported, a stand-in built, a teacher fine-tuned or an output
directory made. This is also where layer map `auto` becomes the map it stands for, so that a run records
the map it used.
"""
from __future__ import annotations

from dsgkd.config import RunConfig
from dsgkd.core.layer_maps import named_layer_map, resolve_layer_map
from dsgkd.errors import UserError
from dsgkd.models.shape import ModelShape, model_shape


def _check_length(cfg: RunConfig, shape: ModelShape, role: str, ref: str) -> None:
    if cfg.train.max_length > shape.max_length:
        raise UserError(f"train.max_length {cfg.train.max_length} exceeds {role} '{ref}' limit of "
                        f"{shape.max_length} tokens")


def check_shapes(cfg: RunConfig) -> RunConfig:
    """`cfg`, checked, with layer_map `auto` replaced by the map it stands for at the pair's depths.

    Without KD the teacher is never loaded, so its shape is not asked for either and `auto` stays as it is.
    """
    student = model_shape(cfg.student.ref)
    _check_length(cfg, student, "student", cfg.student.ref)
    if not cfg.distill.kd_on:
        return cfg
    teacher = model_shape(cfg.teacher.ref)
    _check_length(cfg, teacher, "teacher", cfg.teacher.ref)
    spec = named_layer_map(cfg.distill.layer_map, teacher.depth, student.depth)
    resolve_layer_map(spec, teacher.depth, student.depth)
    return cfg if spec == cfg.distill.layer_map else cfg.with_overrides({"distill.layer_map": spec})
