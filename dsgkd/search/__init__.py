"""The Ray edge: search spaces (`space`), Ray Tune + Optuna + ASHA (`tune`, `asha`), Ray Train workers
(`distributed`), the local Ray instance (`local_ray`) and the records a search leaves (`trial_records`). The
only package that imports Ray, and only where a function needs it."""
