"""Run-to-run inference: candidate/baseline ratio intervals from rounds of runs, paired by round when possible.

Why not the within-run bootstrap alone: two runs of the *same* configuration differ by more than the spread
inside one run (a new service process, the plans ANALYZE picked, what the machine did meanwhile). On this 2-core
machine an 8-second burst differs by ~9 % (sd of log) from one run to the next, while its 1-second blocks promise
~2 %. So the unit of replication is the run:

* per round i (interleaved A B C A B C ...) the paired log ratio d_i = log(candidate_i / baseline_i); drift of the
  machine hits both runs of a round and cancels;
* the variance of d comes from the rounds themselves (R - 1 degrees of freedom), pooled with this machine's
  measured A/A spread (`bookbench calibrate`, stored as a NoisePrior) or, uncalibrated, a deliberately wide
  default; never below what the within-run block bootstrap says one pair's d varies by;
* the interval is exp(mean d +- t * se): Student's t with the pooled degrees of freedom.

With one run per side the prior alone sets the interval, so a single pair is only called improved/regressed when
the effect is far beyond the machine's run-to-run noise.

The position effect (`position_effect`): a run's figure may depend on its place in the round (what the previous
run left behind, a trend inside the round, a neighbour whose cycle lines up with the schedule). The pairing cannot
see it: with a fixed order it is attributed to the set. With counterbalanced rounds (pipeline.schedule) every
variant runs at every position, so a linear model of log(figure) with a level per round, an effect per variant and
one "later than first in its round" term separates the two; its interval uses the same pooled variance as above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bookbench.analysis.stats import METRICS, t_quantile, verdict
from bookbench.artifacts.comparison import Interval, PositionEffect

# Uncalibrated: assume one run's figure wanders by 10 % (sd of its log) between identical runs, as measured for an
# 8-second burst here before any noise work, and trust that guess only as much as 2 degrees of freedom: t(2) = 4.3,
# so one pair must differ by more than ~1.8x to be called changed.
DEFAULT_RUN_SD = 0.10
DEFAULT_PRIOR_DF = 2


@dataclass(frozen=True)
class NoisePrior:
    """Run-to-run spread of one scenario's metric on one machine: sd of log(one run's figure)."""

    sd: float
    df: int
    source: str  # "calibration <id>" or "default (uncalibrated)"
    measured: bool  # True when it comes from an A/A calibration on this machine


def default_prior() -> NoisePrior:
    return NoisePrior(DEFAULT_RUN_SD, DEFAULT_PRIOR_DF, "default (uncalibrated)", measured=False)


@dataclass(frozen=True)
class RunFigure:
    """One run's figure as its report states it, and how much its log varies within the run (block bootstrap)."""

    value: float
    within_var: float  # variance of log(value) over 1-second-block resamples of this run
    requests: int
    blocks: int


def _check(runs: Sequence[RunFigure], side: str, metric: str) -> None:
    if not runs:
        raise ValueError(f"{side}: no runs")
    for i, r in enumerate(runs):
        if not (math.isfinite(r.value) and r.value > 0):
            raise ValueError(f"{side}: run {i + 1} has no usable {metric} ({r.value})")


def compare_rounds(base: Sequence[RunFigure], cand: Sequence[RunFigure], metric: str, noise: float,
                   prior: NoisePrior | None = None, confidence: float = 0.95) -> Interval:
    """Candidate/baseline ratio of `metric` with a t interval whose variance includes run-to-run spread.

    Runs are paired by position (round i of each side) when both sides have the same number of runs; otherwise
    the two sides are treated as independent samples of runs.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _check(base, "baseline", metric)
    _check(cand, "candidate", metric)
    prior = prior or default_prior()
    lb = np.log([r.value for r in base])
    lc = np.log([r.value for r in cand])
    paired = len(base) == len(cand)
    # the prior is the variance of one run's log; a pair's log ratio carries two runs
    prior_run_var = prior.sd ** 2
    if paired:
        d = lc - lb
        k = d.size
        center = float(d.mean())
        obs_var, obs_df = (float(d.var(ddof=1)) / 2, k - 1) if k > 1 else (0.0, 0)
        within = float(np.mean([b.within_var + c.within_var for b, c in zip(base, cand, strict=True)])) / 2
        run_ratios = [float(x) for x in np.exp(d)]
        scale = 2.0 / k  # var(mean d) = 2 * run variance / rounds
    else:
        center = float(lc.mean() - lb.mean())
        obs_df = (lb.size - 1) + (lc.size - 1)
        ss = float(((lb - lb.mean()) ** 2).sum() + ((lc - lc.mean()) ** 2).sum())
        obs_var = ss / obs_df if obs_df else 0.0
        within = float(np.mean([r.within_var for r in (*base, *cand)]))
        run_ratios = []
        k = min(lb.size, lc.size)
        scale = 1.0 / lb.size + 1.0 / lc.size
    df = prior.df + obs_df
    pooled = (prior.df * prior_run_var + obs_df * obs_var) / df
    run_var = max(pooled, within)
    source = (f"{k} round(s) + {prior.source}" if pooled >= within
              else "within-run bootstrap (larger than the run-to-run estimate)")
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(run_var * scale)
    low, high = math.exp(center - half), math.exp(center + half)
    # the measured noise of this compare's own estimate (the calibrated run-to-run spread over these rounds) sets the
    # threshold when it is larger than the configured one: on a noisy machine 5 % is not a meaningful change
    noise_used = max(noise, math.exp(prior.sd * math.sqrt(scale)) - 1) if prior.measured else noise
    return Interval(
        metric=metric, baseline=float(np.exp(lb.mean())), candidate=float(np.exp(lc.mean())),
        ratio=math.exp(center), low=low, high=high, verdict=verdict(metric, low, high, noise_used),
        noise_used=noise_used, rounds=k, paired=paired, df=df, sd_pair=math.sqrt(2 * run_var),
        variance_source=source, run_ratios=run_ratios,
        n_baseline=sum(r.requests for r in base), n_candidate=sum(r.requests for r in cand),
        blocks_baseline=sum(r.blocks for r in base), blocks_candidate=sum(r.blocks for r in cand))


def detectable_change(prior: NoisePrior, rounds: int, noise: float, confidence: float = 0.95) -> float:
    """The relative change (0.12 = 12 %) a paired compare of `rounds` rounds calls improved/regressed about half
    the time: its interval's half-width beyond the noise threshold the verdict uses."""
    df = prior.df + rounds - 1
    se = prior.sd * math.sqrt(2.0 / rounds)
    half = t_quantile(0.5 + confidence / 2, df) * se
    threshold = max(noise, math.exp(se) - 1) if prior.measured else noise
    return math.exp(half + math.log1p(threshold)) - 1


@dataclass(frozen=True)
class PlacedFigure:
    """One run's figure with its place in the schedule: variant index, round and position inside the round."""

    variant: int
    round: int
    position: int
    figure: RunFigure


def position_effect(placed: Sequence[PlacedFigure], metric: str, prior: NoisePrior | None = None,
                    confidence: float = 0.95) -> PositionEffect:
    """Estimate the later-vs-first effect from counterbalanced rounds (see the module docstring).

    Model: log y = round level + variant effect + beta * [position > 0] + e. With two variants and alternating
    rounds beta is the mean over rounds of log(second / first), the set difference cancelling between A B and
    B A rounds. beta is estimable only when "later" is not a function of the variant and the round (a fixed
    order makes it one): then the effect is reported as not separable rather than guessed.
    """
    prior = prior or default_prior()
    usable = [p for p in placed if math.isfinite(p.figure.value) and p.figure.value > 0]
    counts: dict[int, int] = {}
    for p in usable:
        counts[p.round] = counts.get(p.round, 0) + 1
    usable = [p for p in usable if counts[p.round] > 1]  # a round of one run says nothing about position
    rounds = sorted({p.round for p in usable})
    variants = sorted({p.variant for p in usable})
    unseparable = PositionEffect(metric=metric, separable=False, ratio=1.0, low=1.0, high=1.0, detectable=False,
                                 df=0, rounds=len(rounds), variance_source="")
    if not usable:
        return unseparable
    x = np.zeros((len(usable), len(rounds) + len(variants)))
    for i, p in enumerate(usable):
        x[i, rounds.index(p.round)] = 1.0
        if p.variant != variants[0]:
            x[i, len(rounds) + variants.index(p.variant) - 1] = 1.0
        x[i, -1] = 1.0 if p.position > 0 else 0.0
    rank_without = int(np.linalg.matrix_rank(x[:, :-1]))
    rank = int(np.linalg.matrix_rank(x))
    if rank == rank_without:
        return unseparable
    y = np.log([p.figure.value for p in usable])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    obs_df = len(usable) - rank
    obs_var = float(resid @ resid) / obs_df if obs_df else 0.0
    df = prior.df + obs_df
    pooled = (prior.df * prior.sd ** 2 + obs_df * obs_var) / df
    within = float(np.mean([p.figure.within_var for p in usable]))
    run_var = max(pooled, within)
    source = (f"{len(rounds)} round(s) + {prior.source}" if pooled >= within
              else "within-run bootstrap (larger than the run-to-run estimate)")
    # var(beta) = run variance * [(X'X)^-]_beta,beta; a generalised inverse is valid for an estimable beta
    factor = float(np.linalg.pinv(x.T @ x)[-1, -1])
    beta = float(coef[-1])
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(run_var * factor)
    low, high = math.exp(beta - half), math.exp(beta + half)
    return PositionEffect(metric=metric, separable=True, ratio=math.exp(beta), low=low, high=high,
                          detectable=low > 1 or high < 1, df=df, rounds=len(rounds), variance_source=source)
