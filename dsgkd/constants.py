"""Facts several layers share, written once: metric direction, the metrics a report shows, the paper's settings,
the importance evaluators a report offers.

DSG-KD paper (arXiv 2409.14904): alpha 0.6 on hidden states, beta 0.2 on word-level attention, no logit
KD, every layer index to index, MSE, the code-switched (Latin-script) words, the pretrained teacher, and
no extra unlabeled notes.
"""
from __future__ import annotations

from pathlib import Path

# the search spaces that ship with dsgkd (`dsgkd demo`, `dsgkd table`)
SEARCH_SPACES = Path(__file__).resolve().parents[1] / "search_spaces"

# what a run can select its best epoch by, and which way is better
SELECT_METRICS = {"auroc": "max", "auprc": "max", "f1": "max", "brier": "min", "loss": "min"}
LOWER_IS_BETTER = frozenset({"brier", "loss", "ece"})
# what every epoch reports on validation as val_<name>: what a search may rank by or trade off against
VALIDATION_METRICS = (*SELECT_METRICS, "ece")
# the test metrics every table shows
REPORTED = ("auroc", "auprc", "f1", "brier")

# the paper's settings; its KD weights as dotted overrides are `dsgkd.core.terms.paper_weights()`, the KD-off
# control's `dsgkd.core.terms.kd_off()` (a KD term the paper lacks is off in both)
PAPER = {"distill.alpha": 0.6, "distill.beta": 0.2, "distill.gamma": 0.0, "distill.layer_map": "all", "distill.hidden_loss": "mse", "distill.projection": "auto",
         "distill.selector": "latin", "teacher.finetune": False, "teacher.random_init": False,
         "data.transfer_path": None}


# `dsgkd analyze --evaluator`: name -> optuna.importance class
IMPORTANCE_EVALUATORS = {"fanova": "FanovaImportanceEvaluator", "ped-anova": "PedAnovaImportanceEvaluator",
                         "mdi": "MeanDecreaseImpurityImportanceEvaluator"}


def lower_is_better(metric: str) -> bool:
    """`val_brier`, `brier`, `test_loss`, ...: the split prefix does not change the direction."""
    return metric.rpartition("_")[2] in LOWER_IS_BETTER if "_" in metric else metric in LOWER_IS_BETTER


def direction(metric: str) -> str:
    return "min" if lower_is_better(metric) else "max"

# `dsgkd predict`: rows read, encoded and scored together (memory is bounded by one chunk)
PREDICT_CHUNK_ROWS = 4096
