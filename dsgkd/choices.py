"""The named choices a config can make, at the bottom of the package: one registry per choice.

Each registry is filled where its choices are implemented (its *home*, imported the first time the registry is
read), so adding a choice is one decorated function or class in one file, and `dsgkd.config` validates the names
without importing the layers that implement them (docs/architecture.md, "Layers" and "Extending").
"""
from __future__ import annotations

from dsgkd.registry import Registry

SELECTORS = Registry("term selector", home="dsgkd.core.align")
HIDDEN_LOSSES = Registry("hidden loss", home="dsgkd.core.losses.hidden")
LAYER_MAPS = Registry("layer map", home="dsgkd.core.layer_maps")
THRESHOLD_RULES = Registry("threshold rule", home="dsgkd.core.metrics")
KD_TERMS = Registry("KD term", home="dsgkd.core.terms")
