"""A/A calibration of a table whose arms are each chosen by a search: what the seed-level test cannot see.

`dsgkd.core.calibration.simulate_aa` calibrates the sign-flip test for two fixed arms: seeds are the only noise.
In `dsgkd table` each arm's config is the best of a few trials scored on one validation seed, so two arms differ
also by which configs their searches happened to find, a difference that every training seed shares and that the
sign-flip test over seeds takes for an effect. This module simulates that, with no teacher effect at all, for
the two primaries the table has declared:

- `separate`: arm A is one search's best config with teacher T, arm B another search's best with teacher U (the
  random-init control's design): A − B per seed carries both searches' luck;
- `crossed_mean`: the two searched configs each run with both teachers and the teacher's effect read within each,
  averaged, and tested as one per-seed difference: a config's own quality cancels; what is left is how differently
  the two configs suit the two teachers (a config × teacher interaction), which each search selects on, in
  opposite directions (the teacher's search favours configs that suit the teacher, the control's the other);
- `crossed_both` (`true_vs_wrong_teacher`, `crossed_claim`): the same rows, a direction claimed only where both
  configs show it, each by its own sign-flip test. The selected interactions pull the two within-config
  differences apart, so demanding both cuts the false claims they cause;
- `separate_per_seed`: separate searches again, but a fresh pair of them for every training seed, so a search's
  luck is drawn per seed like the rest of the seed's noise and the sign-flip test holds its size whatever it is,
  at a search cost times the seeds (not built in `dsgkd table`: the reference the others are read against).

The model, per candidate config k of a search: quality c_k ~ N(0, sd_config), and for each teacher t an
interaction i_kt ~ N(0, sd_interaction); a search of `n_candidates` trials on teacher t scores each candidate
once on validation (c_k + i_kt + N(0, sd_val)) and keeps the best. A trained run of config k with teacher t on
training seed s scores c_k + i_kt + u_s + N(0, sd_run) on test, u_s shared by every row of that seed (they share
its batches), so it cancels in every per-seed difference. Teachers are exchangeable: the null holds exactly.
"""
from __future__ import annotations

import numpy as np

from dsgkd.core.calibration import binomial_rate, sign_flip_test

DESIGNS = ("separate", "crossed_mean", "crossed_both", "separate_per_seed")


def _search(rng: np.random.Generator, n: int, n_candidates: int, sd_config: float, sd_interaction: float,
            sd_val: float, teacher: int, n_teachers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(quality, interaction with each teacher) of the config each of `n` searches on `teacher` keeps."""
    c = sd_config * rng.standard_normal((n, n_candidates))
    i = sd_interaction * rng.standard_normal((n, n_candidates, n_teachers))
    best = np.argmax(c + i[..., teacher] + sd_val * rng.standard_normal((n, n_candidates)), axis=1)
    rows = np.arange(n)
    return c[rows, best], i[rows, best]


def simulate(*, n_sims: int, n_seeds: int, n_candidates: int = 8, sd_config: float = 0.0,
             sd_interaction: float = 0.0, sd_run: float = 0.0134, sd_val: float = 0.03, effect: float = 0.0,
             seed: int = 0) -> dict[str, np.ndarray]:
    """(n_sims, n_seeds) per-seed differences of simulated tables: `separate` (the teacher's search's config
    with the teacher − the control's own search's config with the other teacher), the same with a fresh pair of
    searches for every seed (`separate_per_seed`) and, within each searched config, the teacher − the other
    (`within_searched`, `within_control`). `effect` adds a true teacher effect (power)."""
    rng = np.random.default_rng(seed)
    kw = {"n_candidates": n_candidates, "sd_config": sd_config, "sd_interaction": sd_interaction, "sd_val": sd_val}
    c_a, i_a = _search(rng, n_sims, teacher=0, **kw)  # searched with the teacher
    c_b, i_b = _search(rng, n_sims, teacher=1, **kw)  # the control's own search, with the other teacher

    def run(c, i):  # one row over the seeds: config quality and interaction, plus its own run noise
        return (c + i)[:, None] + sd_run * rng.standard_normal((n_sims, n_seeds))

    true_a, true_b = run(c_a, i_a[:, 0] + effect), run(c_b, i_b[:, 0] + effect)
    out = {"separate": true_a - run(c_b, i_b[:, 1]), "within_searched": true_a - run(c_a, i_a[:, 1]),
           "within_control": true_b - run(c_b, i_b[:, 1])}
    fresh = np.random.default_rng([seed, 1])  # its own stream: the other designs' tables do not depend on it
    (c_a, i_a), (c_b, i_b) = (_search(fresh, n_sims * n_seeds, teacher=t, **kw) for t in (0, 1))
    per_seed = ((c_a + i_a[:, 0] + effect) - (c_b + i_b[:, 1])).reshape(n_sims, n_seeds)
    out["separate_per_seed"] = per_seed + sd_run * np.sqrt(2) * fresh.standard_normal((n_sims, n_seeds))
    return out


def crossed_claim(d_searched: np.ndarray, d_control: np.ndarray, alpha: float = 0.05) -> dict:
    """The crossed primary's decision on one table: the teacher's effect within each searched config, each by
    the exact sign-flip test over seeds; a direction is claimed only where both configs show it (each p < alpha,
    same sign), so the claim's p is the larger of the two (an intersection-union test, level alpha whatever the
    two configs share). p is 1 where the two configs point opposite ways."""
    a, b = sign_flip_test(d_searched), sign_flip_test(d_control)
    same = np.sign(a["diff"]) == np.sign(b["diff"]) and a["diff"] != 0
    return {"p": max(a["p"], b["p"]) if same else 1.0, "p_within": [a["p"], b["p"]],
            "diff_within": [a["diff"], b["diff"]]}


def false_positive_rate(design: str, *, n_sims: int = 2000, alpha: float = 0.05, **kw) -> dict:
    """How often the design's test claims a difference (either way) at `alpha` on simulated tables (with no
    teacher effect unless `effect` says otherwise: then it is the power), with the Clopper–Pearson interval, and
    the SD across tables of the difference the design reports."""
    if design not in DESIGNS:
        raise ValueError(f"design {design!r}: one of {DESIGNS}")
    d = simulate(n_sims=n_sims, **kw)
    if design in ("separate", "separate_per_seed"):
        reported = d[design]
        hits = sum(sign_flip_test(row)["p"] < alpha for row in reported)
    else:
        reported = 0.5 * (d["within_searched"] + d["within_control"])
        if design == "crossed_mean":
            hits = sum(sign_flip_test(row)["p"] < alpha for row in reported)
        else:
            hits = sum(crossed_claim(a, b, alpha)["p"] < alpha for a, b in zip(d["within_searched"],
                                                                              d["within_control"]))
    return {**binomial_rate(int(hits), n_sims), "sd_of_table_mean": float(reported.mean(axis=1).std(ddof=1))}
