"""DESIGN §4 import path for the evaluation metrics; the code lives in `dsgkd.core.metrics`."""
from dsgkd.core.metrics import (METRICS, THRESHOLD_RULES, binary_metrics, bootstrap_ci, choose_threshold, ece,
                                evaluate_with_ci, mean_std, paired_bootstrap)

__all__ = ["METRICS", "THRESHOLD_RULES", "binary_metrics", "bootstrap_ci", "choose_threshold", "ece",
           "evaluate_with_ci", "mean_std", "paired_bootstrap"]
