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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from bookbench.analysis.stats import METRICS, verdict

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


@dataclass(frozen=True)
class RoundsCI:
    metric: str
    baseline: float  # geometric mean of the baseline runs' figures
    candidate: float
    ratio: float  # exp(mean paired log ratio) when paired, else ratio of the geometric means
    low: float
    high: float
    verdict: str
    noise_used: float  # the threshold the verdict used: max(configured, measured noise of this estimate)
    rounds: int  # runs per side when paired, else min of the two
    paired: bool
    df: int  # degrees of freedom of the t interval
    sd_pair: float  # sd of one pair's log ratio the interval used
    variance_source: str  # which term set the variance: "rounds + <prior source>" or "within-run bootstrap"
    run_ratios: list[float]  # per round candidate/baseline (paired), for the page
    n_baseline: int
    n_candidate: int
    blocks_baseline: int
    blocks_candidate: int


def _check(runs: Sequence[RunFigure], side: str, metric: str) -> None:
    if not runs:
        raise ValueError(f"{side}: no runs")
    for i, r in enumerate(runs):
        if not (math.isfinite(r.value) and r.value > 0):
            raise ValueError(f"{side}: run {i + 1} has no usable {metric} ({r.value})")


def compare_rounds(base: Sequence[RunFigure], cand: Sequence[RunFigure], metric: str, noise: float,
                   prior: NoisePrior | None = None, confidence: float = 0.95) -> RoundsCI:
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
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(run_var * scale)
    low, high = math.exp(center - half), math.exp(center + half)
    # the measured noise of this compare's own estimate (the calibrated run-to-run spread over these rounds) sets the
    # threshold when it is larger than the configured one: on a noisy machine 5 % is not a meaningful change
    noise_used = max(noise, math.exp(prior.sd * math.sqrt(scale)) - 1) if prior.measured else noise
    return RoundsCI(
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
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    threshold = max(noise, math.exp(se) - 1) if prior.measured else noise
    return math.exp(half + math.log1p(threshold)) - 1
