"""dsgkd: Ray-distributed hyperparameter search for DSG-KD (domain-specific → generalist knowledge distillation)."""

__version__ = "0.1.0"
