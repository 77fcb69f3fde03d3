"""The primary comparison on its statistical unit, the training seed, and the A/A calibration that licenses it.

With 5 seeds the seeds × notes bootstrap of `dsgkd.core.stats` resamples five values: its percentile interval is
about as wide as a z interval with the (n − 1)/n plug-in variance, where a t interval on 4 degrees of freedom is
needed, so when seed effects dominate it rejects a true null far more often than its nominal level. An
instrument whose false-positive rate is unknown should not print p-values, so this module gives:

- `simulate_aa`: a seed-level generative model of two arms with no true difference, scored on shared test notes,
  and the false-positive rate (with its binomial interval) of any test run on its tables;
- `sign_flip_test`: the test whose size does not depend on a variance estimate — under the null the two arms are
  exchangeable within a seed, so each per-seed difference is symmetric about 0 and flipping its sign is a draw
  from the null; exact by enumeration, so it holds its level for any n (but cannot go below 2 / 2^n);
- `min_detectable_difference` / `seeds_for`: the power declared before the run, so seeds and test-set size are
  chosen to make the primary comparison able to see the difference it is meant to see;
- `primary_comparison`: the calibrated primary comparison from the per-seed test AUROCs of two seed-paired arms.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

from dsgkd.core.stats import seed_note_comparison

_TIE = 1e-9  # relative tolerance: a flipped sum equal to the observed one up to rounding counts as extreme


# --- the sign-flip test -------------------------------------------------------------------------------------

def _signed_sums(d: np.ndarray) -> np.ndarray:
    """All 2^k sums ±d_1 ± … ± d_k, built by doubling (k ≤ ~12 here, so at most a few thousand values)."""
    sums = np.zeros(1)
    for x in d:
        sums = np.concatenate([sums + x, sums - x])
    return sums


def _exact_count(d: np.ndarray, t: float, eps: float) -> int:
    """#{sign vectors s : |s·d| ≥ t − eps} over all 2^n, by meeting in the middle: the sums of the two halves
    are enumerated apart (2^(n/2) each) and, for every left sum, the right sums that complete an extreme total
    are counted by binary search. Memory and time stay at 2^(n/2), so n = 20 costs about a millisecond."""
    left, right = _signed_sums(d[: len(d) // 2]), np.sort(_signed_sums(d[len(d) // 2:]))
    upper = len(right) - np.searchsorted(right, t - eps - left, side="left")  # left + right ≥ t − eps
    lower = np.searchsorted(right, -(t - eps) - left, side="right")  # left + right ≤ −(t − eps)
    return int(upper.sum() + lower.sum())


def sign_flip_test(diffs, *, exact_max: int = 20, n_perm: int = 100_000, seed: int = 0,
                   alpha: float = 0.05) -> dict:
    """Two-sided sign-flip permutation test of the mean per-seed paired difference (A − B, one value per seed).

    Why the mean and not the t statistic: under sign flips Σd² is fixed, so t is a monotone function of |mean|
    and both give the same p. Exact (all 2^n flips, p = #{|Σ s·d| ≥ |Σ d|} / 2^n, the identity included) for
    n ≤ exact_max; otherwise Monte-Carlo with the identity counted, p = (1 + #) / (1 + n_perm), so the test
    keeps its level there too. `min_p` is the smallest p this n can give: 2 / 2^n (the identity and its
    mirror), so n = 5 seeds (0.0625) can never reach 0.05, and 6 (0.03125) is the fewest that can.

    ci_low / ci_high are the paired t interval at 1 − alpha: a sign-flip test and a t interval can disagree at
    the margin (always at n = 5, where the interval may exclude 0 while p ≥ 0.0625); the p is the decision.
    """
    d = np.asarray(diffs, dtype=float).ravel()
    n = d.size
    if n < 1 or not np.isfinite(d).all():
        raise ValueError(f"need at least one finite per-seed difference, got {d.tolist()}")
    t = abs(d.sum())
    eps = _TIE * max(np.abs(d).sum(), 1e-300)
    exact = n <= exact_max
    if t <= eps:
        p = 1.0
    elif exact:
        p = _exact_count(d, t, eps) / 2.0 ** n
    else:
        rng, hits, step = np.random.default_rng(seed), 0, max(1, 2_000_000 // n)
        for start in range(0, n_perm, step):
            signs = rng.integers(0, 2, size=(min(step, n_perm - start), n)) * 2 - 1
            hits += int(np.sum(np.abs(signs @ d) >= t - eps))
        p = (1 + hits) / (1 + n_perm)
    min_p = 2.0 / 2.0 ** n if exact else max(2.0 / 2.0 ** n, 1.0 / (1 + n_perm))
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = sps.t.ppf(1 - alpha / 2, n - 1) * sd / np.sqrt(n) if n > 1 else float("nan")
    return {"diff": mean, "p": float(min(p, 1.0)), "n": n, "min_p": float(min_p), "exact": exact, "sd": sd,
            "ci_low": mean - half, "ci_high": mean + half}


# --- the A/A simulator --------------------------------------------------------------------------------------

class SimTable(NamedTuple):
    """One simulated table: labels, each arm's seeds × notes probabilities, each arm's per-seed test AUROC."""

    y: np.ndarray
    probs_a: np.ndarray
    probs_b: np.ndarray
    auroc_a: np.ndarray
    auroc_b: np.ndarray


def rank_auroc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of every row of `scores` (…, notes) by the Mann–Whitney rank sum: ties get half credit, as in
    sklearn and `dsgkd.core.metrics`, and one sort per row instead of a per-row sklearn call."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = sps.rankdata(scores, axis=-1)
    return (ranks[..., y].sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _binormal(auroc: float, note_noise: float) -> tuple[float, float]:
    """The class separation δ giving `auroc` to one model, and dAUROC/dδ there. A model's logit is the note's
    latent score (N(0, 1) within class, + δ for positives) plus its own N(0, note_noise²) noise, so within a
    class the SD is σ = √(1 + note_noise²) and AUROC = Φ(δ / (σ√2)); the slope converts an AUROC-scale seed
    SD into a logit-scale one."""
    sigma = np.sqrt(2 * (1 + note_noise ** 2))
    q = sps.norm.ppf(auroc)
    return float(sigma * q), float(sps.norm.pdf(q) / sigma)


def simulate_tables(*, n_seeds: int, n_notes: int, seed_sd: float = 0.012, note_noise: float = 0.5,
                    auroc: float = 0.85, prevalence: float = 0.3, seed_corr: float = 0.0, true_diff: float = 0.0,
                    decimals: int | None = None, n_sims: int = 500, seed: int = 0) -> Iterator[SimTable]:
    """Tables of two arms scored on the same test notes, drawn at the seed level.

    Each note has a latent difficulty shared by both arms (so the note sampling is common to them, as on a real
    test set); each (arm, seed) model shifts the positives' logits by its own seed effect u — a shift of all
    logits would leave AUROC unchanged — and adds per-(seed, note) noise. `seed_sd` is the SD of u on the AUROC
    scale (converted with the binormal slope; the realised per-seed AUROC SD also carries the note noise's
    share). `seed_corr` correlates A's and B's effect for the same seed (a shared data order and initialisation).
    `true_diff` moves arm A's mean AUROC up by that much: 0 is the A/A null, anything else measures power.
    `decimals` rounds the probabilities (ties are scored half); the bootstrap counts per distinct value, so
    rounding to 2 decimals is what makes hundreds of bootstrap runs affordable.
    """
    delta, slope = _binormal(auroc, note_noise)
    u_sd, shift = seed_sd / slope, true_diff / slope
    rng = np.random.default_rng(seed)
    for _ in range(n_sims):
        y = rng.random(n_notes) < prevalence
        y[:2] = (True, False)  # both classes present, or AUROC is undefined
        z = delta * y + rng.standard_normal(n_notes)
        common, own = rng.standard_normal(n_seeds), rng.standard_normal((2, n_seeds))
        u = u_sd * (np.sqrt(seed_corr) * common + np.sqrt(1 - seed_corr) * own)
        u[0] += shift
        logits = z + u[..., None] * y + note_noise * rng.standard_normal((2, n_seeds, n_notes))
        probs = 1 / (1 + np.exp(-logits))
        if decimals is not None:
            probs = np.round(probs, decimals)
        a = rank_auroc(y, probs)
        yield SimTable(y.astype(int), probs[0], probs[1], a[0], a[1])


def binomial_rate(k: int, n: int) -> dict:
    """k of n with its Clopper–Pearson 95% interval: the interval says whether a rate is distinguishable from
    the nominal level with the simulations run, not just the point."""
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    return {"rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high), "rejections": k, "n_sims": n}


def simulate_aa(test_fn, *, n_seeds: int, n_notes: int, seed_sd: float = 0.012, note_noise: float = 0.5,
                n_sims: int = 500, alpha: float = 0.05, seed: int = 0, **table_kw) -> dict:
    """False-positive rate at `alpha` of `test_fn` (table → p) on simulated tables with no true difference.

    `test_fn` may be a mapping name → function, run on the same tables (the comparison between tests is then
    paired); the result is then keyed by name. Also returned: the realised per-seed AUROC SD within an arm and
    the SD of the per-seed paired difference, so the simulation can be checked against the table it imitates.
    A NaN p is not a rejection and is counted in `n_nan`. Keyword `true_diff` (see `simulate_tables`) turns the
    same machinery into a power estimate.
    """
    tests = dict(test_fn) if isinstance(test_fn, Mapping) else {"test": test_fn}
    ps = {name: [] for name in tests}
    sd_seed, sd_pair = [], []
    for table in simulate_tables(n_seeds=n_seeds, n_notes=n_notes, seed_sd=seed_sd, note_noise=note_noise,
                                 n_sims=n_sims, seed=seed, **table_kw):
        for name, fn in tests.items():
            ps[name].append(float(fn(table)))
        if n_seeds > 1:
            sd_seed.append(np.sqrt((table.auroc_a.var(ddof=1) + table.auroc_b.var(ddof=1)) / 2))
            sd_pair.append((table.auroc_a - table.auroc_b).std(ddof=1))
    out = {}
    for name, p in ps.items():
        p = np.asarray(p)
        out[name] = {**binomial_rate(int(np.sum(p < alpha)), n_sims), "n_nan": int(np.isnan(p).sum())}
        out[name]["fpr"] = out[name].pop("rate")
    shared = {"alpha": alpha, "n_seeds": n_seeds, "n_notes": n_notes,
              "per_seed_auroc_sd": float(np.sqrt(np.mean(np.square(sd_seed)))) if sd_seed else float("nan"),
              "paired_diff_sd": float(np.sqrt(np.mean(np.square(sd_pair)))) if sd_pair else float("nan")}
    if isinstance(test_fn, Mapping):
        return {**shared, "tests": out}
    return {**shared, **out["test"]}


def sign_flip_p(table: SimTable) -> float:
    return sign_flip_test(table.auroc_a - table.auroc_b)["p"]


def t_test_p(table: SimTable) -> float:
    return float(sps.ttest_rel(table.auroc_a, table.auroc_b).pvalue)


def bootstrap_p(n_boot: int = 500, seed: int = 0) -> Callable[[SimTable], float]:
    """The table's current primary test, `seed_note_comparison` with paired seeds, as a table → p function."""
    def p(table: SimTable) -> float:
        return seed_note_comparison(table.y, table.probs_a, table.probs_b, "auroc", n_boot=n_boot, seed=seed,
                                    pair_seeds=True)["p"]
    return p


# --- power, declared before the run -------------------------------------------------------------------------

def _t_power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test on n per-seed differences ~ N(effect, sd²): noncentral t."""
    df, nc = n - 1, effect * np.sqrt(n) / sd
    crit = sps.t.ppf(1 - alpha / 2, df)
    far = sps.nct.cdf(-crit, df, nc)  # the wrong-sign tail: tiny, and NaN in scipy at some df = 1 points
    return float(sps.nct.sf(crit, df, nc) + (0.0 if np.isnan(far) else far))


def min_detectable_difference(sd_paired_diff: float, n_seeds: int, *, alpha: float = 0.05, power: float = 0.8,
                              test: str = "t") -> float:
    """The smallest true mean per-seed difference detected with `power` by a two-sided test at `alpha`, given
    the SD of the per-seed paired differences.

    test="t": exact for normal differences — the root in δ of the noncentral-t power (df = n − 1,
    noncentrality δ√n / sd). test="z": (z_{1−α/2} + z_power) · sd / √n, the normal approximation the review's
    0.034–0.038 came from; it understates the MDD at small n (n = 5: by about a third). test="sign_flip": the
    t value, which the sign-flip test approaches as n grows, and infinity where its smallest p (2 / 2^n) is
    above alpha, since then nothing is detectable; at small n its power at this value is below `power`
    (`sign_flip_power` measures it).
    """
    if sd_paired_diff <= 0 or n_seeds < 2:
        raise ValueError(f"need sd > 0 and at least 2 seeds, got sd={sd_paired_diff}, n={n_seeds}")
    if test == "z":
        return float((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) * sd_paired_diff / np.sqrt(n_seeds))
    if test == "sign_flip" and 2.0 / 2.0 ** n_seeds > alpha:
        return float("inf")
    if test not in ("t", "sign_flip"):
        raise ValueError(f"test must be 't', 'z' or 'sign_flip', got {test!r}")
    hi = sd_paired_diff
    while _t_power(hi, sd_paired_diff, n_seeds, alpha) < power:
        hi *= 2
    return float(brentq(lambda e: _t_power(e, sd_paired_diff, n_seeds, alpha) - power, 0.0, hi, xtol=1e-12))


def seeds_for(mdd_target: float, sd_paired_diff: float, *, alpha: float = 0.05, power: float = 0.8,
              test: str = "t", n_max: int = 10_000) -> int:
    """The fewest seeds whose MDD is at most `mdd_target` (the MDD falls with n, so the first one found)."""
    for n in range(2, n_max + 1):
        if min_detectable_difference(sd_paired_diff, n, alpha=alpha, power=power, test=test) <= mdd_target:
            return n
    raise ValueError(f"no n ≤ {n_max} reaches an MDD of {mdd_target} at sd {sd_paired_diff}")


def sign_flip_power(effect: float, sd: float, n_seeds: int, *, alpha: float = 0.05, n_sims: int = 2000,
                    seed: int = 0) -> dict:
    """Rejection rate of the exact sign-flip test on n per-seed differences ~ N(effect, sd²): the t-based MDD
    is only a promise for the sign-flip test where this comes out near the declared power."""
    rng = np.random.default_rng(seed)
    draws = effect + sd * rng.standard_normal((n_sims, n_seeds))
    hits = sum(sign_flip_test(d)["p"] < alpha for d in draws)
    return binomial_rate(int(hits), n_sims)


# --- the primary comparison ---------------------------------------------------------------------------------

def primary_comparison(auroc_a, auroc_b, *, alpha: float = 0.05, sd_planned: float | None = None) -> dict:
    """A − B in mean per-seed test AUROC of two seed-paired arms (entry i of each is the same training seed),
    tested by the exact sign-flip test on the per-seed differences, with the paired t interval and the
    minimum difference detectable at 80% power.

    The MDD uses `sd_planned` (the SD of paired differences assumed when seeds and test set were chosen) when
    given, else the SD observed here; `mdd_sd` says which. `can_reject` is False where n is too small for any
    p below alpha (n ≤ 5 at 0.05): such a table can show an interval but cannot claim a difference.
    """
    a, b = np.asarray(auroc_a, dtype=float).ravel(), np.asarray(auroc_b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"seed-paired arms need the same seeds, got {a.size} and {b.size}")
    r = sign_flip_test(a - b, alpha=alpha)
    sd = sd_planned if sd_planned is not None else r["sd"]
    mdd = (min_detectable_difference(sd, r["n"], alpha=alpha, power=0.8, test="sign_flip")
           if r["n"] > 1 and sd == sd and sd > 0 else float("nan"))
    return {"test": "sign_flip", "diff": r["diff"], "p": r["p"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "n_seeds": r["n"], "min_p": r["min_p"], "can_reject": r["min_p"] <= alpha, "sd_paired": r["sd"],
            "mdd_80": mdd, "mdd_sd": "planned" if sd_planned is not None else "observed"}
