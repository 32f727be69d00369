"""Per-cohort hyper-parameters by nested cross-validation inside the training patients, within a time budget.

``tune(run, train_ids, cfg)`` tries the configured values (``model.tune_space``) one candidate
at a time — the current config first, then the rest of the grid in a seeded random order —
scoring each by ``model.tune_folds``-fold CV on ``train_ids`` only (so when called inside an
outer fold, the outer test patients are never seen). It stops starting candidates once
``model.tune_budget_s`` seconds have passed and returns the best. The score of a candidate is
the mean over its tasks of (balanced accuracy − 1/K)/(1 − 1/K) and (Harrell's C − 0.5)/0.5,
i.e. the gain over chance, so the two tasks weigh the same.
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


def tune(run: GraphRun, train_ids: Sequence[str], cfg: ModelConfig, progress: bool = False,
         budget_s: float | None = None) -> tuple[ModelConfig, pd.DataFrame]:
    """(best config, one row per tried candidate with its inner-CV score); see module doc."""
    from graphonc.model.protocol import GNNModel, cross_validate, prediction_scorer

    budget = cfg.tune_budget_s if budget_s is None else budget_s
    inner = _inner_splits(run, train_ids, cfg.tune_folds, cfg.seed)
    n_classes = run.nodes(S.PATIENT)[L.LABEL].nunique() if run.patient_columns().get("label") else 0
    t0, rows = time.perf_counter(), []
    best_cfg, best_score = cfg, -np.inf
    for cand in candidates(cfg):
        if rows and time.perf_counter() - t0 > budget:
            break
        trial = cfg.model_copy(update=cand)
        df = cross_validate(run, inner, {"gnn": lambda: GNNModel(trial)}, (prediction_scorer,), progress=progress)
        score = float(np.nanmean([gain_over_chance(r, n_classes) for r in df.to_dict("records")]))
        rows.append({**cand, "score": score, "seconds": round(time.perf_counter() - t0, 1)})
        log.info("tune: %s -> %.3f", cand, score)
        if score > best_score:
            best_cfg, best_score = trial, score
    log.info("tune: %d candidate(s) in %.0f s, best %s", len(rows), time.perf_counter() - t0,
             {k: getattr(best_cfg, k) for k in rows[0] if k not in ("score", "seconds")})
    return best_cfg, pd.DataFrame(rows)
