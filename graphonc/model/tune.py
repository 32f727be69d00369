"""Per-cohort hyper-parameters by nested cross-validation inside the training patients, within a time budget.

``tune(run, train_ids, cfg)`` chooses among the configured values (``model.tune_space``) by
``model.tune_folds``-fold CV on ``train_ids`` only (so when called inside an outer fold, the
outer test patients are never seen), in two rounds of successive halving:

1. **Screen**: candidates one at a time, the current config first and then the rest of the
   grid in a seeded random order, each scored with one network per inner fold instead of the
   ``model.ensemble`` members (an ensemble's cost divided by its size), while one more screen
   and two full evaluations (estimated from the screens' time) still fit the budget;
2. **Confirm**: the current config, then the others among the best third of the screened
   candidates, best first, scored again with the configured ensemble: the current config and
   one challenger always, more while the budget lasts; the best confirmed wins. Without a
   challenger in the best third the current config stays, unconfirmed (and a budget too small
   for a second screen is said in a warning with the budget that would do).

Screening first is what makes a budget useful: a candidate's screen costs about a sixth of
its full evaluation with the default 5-member ensemble (MSK prostate, one outer training fold:
32 s against 190 s), so 600 s, which scored 4 candidates in full (the last one started just
before 600 s), now screen 7 of the grid's 64 and confirm 2, in 616 s.
One network is noisier than an ensemble (its early-stopped epoch depends on its seed), hence
the confirmation rather than taking the best screen, and the current config confirmed beside
it: the defaults are left only for a candidate that beats them at full strength.

The score of a candidate is the mean over its tasks of (balanced accuracy − 1/K)/(1 − 1/K) and
(Harrell's C − 0.5)/0.5, i.e. the gain over chance, so the two tasks weigh the same.
"""
from __future__ import annotations

import itertools
import logging
import time
from typing import Sequence

import numpy as np
import pandas as pd

from graphonc import layout as L
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.folds import Split
from graphonc.model_config import ModelConfig

log = logging.getLogger("graphonc")


def candidates(cfg: ModelConfig) -> list[dict]:
    """The current config's values first, then every other grid point, seeded shuffle."""
    space = cfg.tune_space.model_dump()
    keys = sorted(space)
    grid = [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]
    current = {k: getattr(cfg, k) for k in keys}
    rest = [g for g in grid if g != current]
    order = np.random.default_rng(cfg.seed).permutation(len(rest))
    return [current] + [rest[i] for i in order]


def _inner_splits(run: GraphRun, train_ids: Sequence[str], k: int, seed: int) -> list[Split]:
    from sklearn.model_selection import StratifiedKFold

    p = run.nodes(S.PATIENT).set_index(S.ID).loc[list(train_ids)]
    strata = (p[L.LABEL].astype(str) if run.patient_columns().get("label")
              else p[L.OS_EVENT].astype(str)).to_numpy()
    ids = np.asarray(train_ids, dtype=object)
    out = []
    for f, (tr, te) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(ids, strata)):
        out.append(Split(0, f, sorted(ids[tr]), sorted(ids[te])))
    return out


def gain_over_chance(row: dict, n_classes: int) -> float:
    """Mean over the available tasks of the (0 = chance, 1 = perfect) gain."""
    gains = []
    if "balanced_accuracy" in row and not np.isnan(row["balanced_accuracy"]) and n_classes > 1:
        gains.append((row["balanced_accuracy"] - 1 / n_classes) / (1 - 1 / n_classes))
    if "harrell_c" in row and not np.isnan(row["harrell_c"]):
        gains.append((row["harrell_c"] - 0.5) / 0.5)
    return float(np.mean(gains)) if gains else float("nan")


def _finite(scored: tuple[float, dict]) -> float:
    """A (score, candidate) pair's sort key: its score, a NaN (no task could be scored) last."""
    return scored[0] if np.isfinite(scored[0]) else -np.inf


#: Candidates are scored on the network alone: the label trees (model.label_boosting) do not
#: depend on the tuned values, and their out-of-bag folds would cost every inner fit.
NETWORK_ONLY = {"label_boosting": 0.0}

#: The tuner's clock (seconds). A module attribute so that a test can count work instead of time.
clock = time.perf_counter

#: A full candidate (``model.ensemble`` networks per inner fold) costs about this many times its
#: screen per network: the ensemble's out-of-bag bookkeeping and predictions on top (MSK prostate,
#: one outer training fold: 190 s against 32 s for 5 members).
FULL_COST_PER_MEMBER = 1.2


def tune(run: GraphRun, train_ids: Sequence[str], cfg: ModelConfig, progress: bool = False,
         budget_s: float | None = None) -> tuple[ModelConfig, pd.DataFrame]:
    """(best config, one row per scored candidate and round: its values, ``round`` (screen |
    confirm), inner-CV ``score``, ``at_chance`` (inner fits with a task head at chance, counted
    here rather than warned about once per fit) and ``seconds`` since tuning began); see module doc."""
    from graphonc.model.protocol import GNNModel, cross_validate, prediction_scorer

    budget = cfg.tune_budget_s if budget_s is None else budget_s
    inner = _inner_splits(run, train_ids, cfg.tune_folds, cfg.seed)
    n_classes = run.nodes(S.PATIENT)[L.LABEL].nunique() if run.patient_columns().get("label") else 0
    t0, rows = clock(), []

    def elapsed() -> float:
        return clock() - t0

    def score(cand: dict, rnd: str, trial: ModelConfig) -> float:
        df = cross_validate(run, inner, {"gnn": lambda: GNNModel(trial, quiet=True)}, (prediction_scorer,),
                            progress=progress)
        value = float(np.nanmean([gain_over_chance(r, n_classes) for r in df.to_dict("records")]))
        rows.append({**cand, "round": rnd, "score": value, "at_chance": int(df["at_chance"].str.len().gt(0).sum()),
                     "seconds": round(elapsed(), 1)})
        log.info("tune (%s): %s -> %.3f", rnd, cand, value)
        return value

    screens: list[tuple[float, dict]] = []

    def full() -> float:
        """Estimated seconds of one full evaluation, from the mean screen so far."""
        return elapsed() / len(screens) * max(cfg.ensemble * FULL_COST_PER_MEMBER, 1.0)

    # screen while one more screen and the two confirmations a decision needs still fit the budget
    confirms = 2 if cfg.ensemble > 1 else 0
    grid = candidates(cfg)
    for cand in grid:
        if screens and elapsed() * (1 + 1 / len(screens)) + confirms * full() > budget:
            break
        screens.append((score(cand, "screen", cfg.model_copy(update={**cand, **NETWORK_ONLY, "ensemble": 1})), cand))
    current, per_full = screens[0][1], full()
    if len(screens) == 1 < len(grid):
        log.warning("tune: a budget of %.0f s left room for the current config's screen only; kept it. Fix: "
                    "raise --tune-budget / model.tune_budget_s to about %.0f s or more", budget,
                    elapsed() * 3 + confirms * per_full)
    top = sorted(screens, key=_finite, reverse=True)[:max(1, -(-len(screens) // 3))]
    challengers = [c for _, c in top if c != current]
    if cfg.ensemble == 1:  # the screen was the full evaluation
        best = max(screens, key=_finite)[1]
    elif not challengers:  # nothing screened beat the current config, or nothing else was screened
        best = current
    else:
        # the current config is the reference every switch must beat at full strength, and at
        # least one challenger is confirmed beside it (the screens left room for both)
        confirmed = []
        for cand in [current] + challengers:
            if len(confirmed) >= 2 and elapsed() + per_full > budget:
                break
            confirmed.append((score(cand, "confirm", cfg.model_copy(update={**cand, **NETWORK_ONLY})), cand))
        best = max(confirmed, key=_finite)[1]
    best_cfg = cfg.model_copy(update=best)
    chance = sum(r["at_chance"] > 0 for r in rows)
    log.info("tune: %d screened, %d confirmed in %.0f s, best %s%s", len(screens),
             sum(r["round"] == "confirm" for r in rows), elapsed(), best,
             f"; {chance} of {len(rows)} rounds had a head at chance in an inner fold" if chance else "")
    return best_cfg, pd.DataFrame(rows)


def tuned(run: GraphRun, train_ids: Sequence[str], cfg: ModelConfig, progress: bool = False
          ) -> tuple[ModelConfig, pd.DataFrame, dict]:
    """:func:`tune` within ``cfg.tune_budget_s``, with its :func:`tuning_summary`: (best config,
    trials, summary), what ``train --tune`` and ``evaluate --tune`` both record."""
    best, trials = tune(run, train_ids, cfg, progress=progress)
    return best, trials, tuning_summary(cfg, best, trials)


def tuning_summary(before: ModelConfig, after: ModelConfig, trials: pd.DataFrame) -> dict:
    """What a tuning run did, for ``metrics.json`` and the CLI: candidates screened and confirmed,
    the values chosen, and those that differ from the config it started from."""
    keys = sorted(before.tune_space.model_dump())
    rounds = trials["round"].value_counts() if len(trials) else pd.Series(dtype=int)
    return {"screened": int(rounds.get("screen", 0)), "confirmed": int(rounds.get("confirm", 0)),
            "chosen": {k: getattr(after, k) for k in keys},
            "changed": {k: getattr(after, k) for k in keys if getattr(after, k) != getattr(before, k)},
            "seconds": float(trials["seconds"].max()) if len(trials) else 0.0}
