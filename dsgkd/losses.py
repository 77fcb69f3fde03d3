"""DESIGN §4 import path for the DSG-KD losses; the code lives in `dsgkd.core.losses`."""
from dsgkd.core.losses.attention import attention_kd_from_grids, normalise_grid
from dsgkd.core.losses.hidden import HIDDEN_LOSSES, hidden_kd_from_pooled
from dsgkd.core.losses.kd import attention_kd_loss, hidden_kd_loss, make_projection
from dsgkd.core.losses.logit import logit_kd_loss
from dsgkd.core.losses.pooling import attention_grid, attention_grids, pool_layers, pool_spans, span_matrix

__all__ = ["HIDDEN_LOSSES", "attention_grid", "attention_grids", "attention_kd_from_grids", "attention_kd_loss",
           "hidden_kd_from_pooled", "hidden_kd_loss", "logit_kd_loss", "make_projection", "normalise_grid",
           "pool_layers", "pool_spans", "span_matrix"]
