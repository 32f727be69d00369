"""How good are the neighbours? Leakage-free evaluation of similarity on held-out folds.

For each patient-level stratified fold (:func:`graphonc.model.evaluate.make_folds`, the same
folds as ``graphonc evaluate``) the *training* patients form the database and each *test*
patient is a query. Every method sees only the training patients' statistics:

* ``gnn``: one GNN fit per fold (:func:`graphonc.model.train.fit_model`); test patients are
  receive-only in the fold graph, so their embeddings are inductive. Cosine kNN.
* ``knn_features``: cosine kNN on the raw features (standardised clinical + mutated-gene
  indicators, :class:`graphonc.model.tabular.TabularFeatures` fitted on the training fold).
* ``jaccard_genes``: Jaccard similarity of the sets of mutated genes (ties broken by id).
* ``snf``: similarity network fusion (snfpy) of a clinical and a mutation view, fused over
  database + queries (SNF is transductive and unsupervised: it sees the queries' features,
  never their labels or outcomes).
* ``random``: k random database patients (seeded), the chance level.

Metrics per fold (mean over the queries):

* ``precision_at_k``: share of a query's k neighbours with the query's diagnosis label.
* ``c_index``: Harrell's C between the queries' survival and the *neighbour-mean risk*: each
  database patient's observed risk is its martingale residual under the training fold's
  Nelson–Aalen estimate (``event − Λ(time)``: positive = died earlier than the cohort average),
  and a query's predicted risk is the mean over its k neighbours.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import yaml

from graphonc import layout as L
from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph import lineage
from graphonc.graph.run import GraphRun, atomic_dir, write_parquet
from graphonc.model.evaluate import eligible_patients, make_folds, summary_table
from graphonc.model.gnn import ModelConfig
from graphonc.progress import make_progress
from graphonc.search.index import normalised

log = logging.getLogger("graphonc")

METHODS = ("gnn", "knn_features", "jaccard_genes", "snf", "random")
METRICS = ("precision_at_k", "c_index")


def _snf():
    """snfpy 0.2.2 (the current release) passes ``force_all_finite`` to scikit-learn's
    ``check_array``, which scikit-learn 1.8 renamed to ``ensure_all_finite``; translate it."""
    import snf.compute as compute
    from sklearn.utils import validation

    if not getattr(compute.check_array, "_graphonc_compat", False):
        def check_array(*args, force_all_finite=None, **kwargs):
            if force_all_finite is not None:
                kwargs.setdefault("ensure_all_finite", force_all_finite)
            return validation.check_array(*args, **kwargs)

        check_array._graphonc_compat = True
        compute.check_array = check_array
    return compute


# ---------------------------------------------------------------------------------- similarities


def top_k(sim: np.ndarray, k: int, db_ids: np.ndarray) -> np.ndarray:
    """Column indices of the k largest entries per row of ``sim`` (m, n), ties broken by id order."""
    order = np.lexsort((np.broadcast_to(np.argsort(np.argsort(db_ids)), sim.shape), -sim), axis=1)
    return order[:, :k]


def cosine_neighbours(db: np.ndarray, q: np.ndarray, k: int, db_ids: np.ndarray) -> np.ndarray:
    """(m, k) database rows nearest (cosine) to each query row; exact."""
    return top_k(normalised(q) @ normalised(db).T, k, db_ids)


def gene_sets(run: GraphRun) -> dict[str, set[str]]:
    from graphonc.model.tabular import patient_gene_pairs

    pairs = patient_gene_pairs(run)
    return {p: set(g) for p, g in pairs.groupby("patient")["gene"]}


def jaccard_matrix(q_sets: Sequence[set], db_sets: Sequence[set]) -> np.ndarray:
    """(m, n) Jaccard similarity of gene sets; 0 when both are empty."""
    genes = sorted(set().union(*q_sets, *db_sets)) if (q_sets or db_sets) else []
    col = {g: i for i, g in enumerate(genes)}

    def onehot(sets):
        m = np.zeros((len(sets), max(1, len(genes))), np.float32)
        for i, s in enumerate(sets):
            m[i, [col[g] for g in s]] = 1.0
        return m

    a, b = onehot(q_sets), onehot(db_sets)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def snf_similarity(views: list[np.ndarray], metrics: list[str], n_db: int, K: int = 20, t: int = 20,
                   mu: float = 0.5) -> np.ndarray:
    """Fused (n_db + m) × (n_db + m) similarity; rows/cols: database patients first, then queries."""
    import warnings

    snf = _snf()
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # z-scoring a constant column (snfpy sets it to 0)
        aff = snf.make_affinity(views, metric=metrics, K=K, mu=mu)
        return snf.snf(aff, K=K, t=t)


# ---------------------------------------------------------------------------------- metrics


def martingale_residuals(time_: np.ndarray, event: np.ndarray) -> np.ndarray:
    """``event − Λ(time)`` with Λ the Nelson–Aalen cumulative hazard of these patients."""
    from lifelines import NelsonAalenFitter

    naf = NelsonAalenFitter().fit(time_, event)
    return event - naf.cumulative_hazard_at_times(time_).to_numpy()


def score_neighbours(nb: np.ndarray, q_label, db_label, q_time, q_event, db_resid) -> dict:
    """Metrics of one method on one fold; ``nb`` (m, k) database rows per query."""
    from lifelines.utils import concordance_index

    out = {}
    if q_label is not None:
        has = pd.notna(q_label)
        same = (db_label[nb] == q_label[:, None])
        out["precision_at_k"] = float(same[has].mean()) if has.any() else np.nan
    if q_time is not None:
        ok = ~(np.isnan(q_time) | np.isnan(q_event))
        risk = db_resid[nb].mean(1)
        out["c_index"] = float(concordance_index(q_time[ok], -risk[ok], q_event[ok])) if ok.sum() > 1 else np.nan
    return out


# ---------------------------------------------------------------------------------- evaluation


@dataclass
class SimilarityEval:
    per_fold: pd.DataFrame                 # model, fold, n_queries, precision_at_k, c_index, seconds
    summary: pd.DataFrame                  # mean ± sd per model
    neighbours: dict = field(default_factory=dict)   # (model, fold) -> DataFrame query, rank, neighbour
    folds: list = field(default_factory=list)


def _subsample(run: GraphRun, n: int | None, seed: int) -> list[str] | None:
    if n is None:
        return None
    p = eligible_patients(run)
    if n >= len(p):
        return None
    strata = p[L.LABEL].astype(str) if L.LABEL in p else p[L.OS_EVENT].astype(str)
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(p[S.ID].to_numpy(), train_size=n, stratify=strata, random_state=seed)
    return sorted(keep)


def evaluate_similarity(run_dir: Path, folds: int = 5, k: int = 10, cfg: ModelConfig | None = None,
                        methods: Sequence[str] = METHODS, subsample: int | None = None, seed: int = 0,
                        progress: bool = False) -> SimilarityEval:
    """Per fold and method: precision@k of the label and C-index of the neighbour-mean risk (see module doc)."""
    from graphonc.model.stages import model_config
    from graphonc.model.tabular import TabularFeatures
    from graphonc.model.train import fit_model, predict

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise GraphoncError(f"unknown similarity method(s) {bad}; expected some of {', '.join(METHODS)}.")
    if k < 1:
        raise GraphoncError(f"-k must be at least 1, got {k}")
    run = GraphRun.open(run_dir)
    cfg = cfg or model_config(run)
    cols = run.patient_columns()
    split = make_folds(run, folds, cfg.seed)
    keep = _subsample(run, subsample, seed)
    if keep is not None:
        ks = set(keep)
        split = [([i for i in tr if i in ks], [i for i in te if i in ks]) for tr, te in split]
    p = run.nodes(S.PATIENT).set_index(S.ID)
    genes = gene_sets(run) if {"jaccard_genes", "snf"} & set(methods) else {}
    rows, neigh = [], {}
    rng = np.random.default_rng(seed)
    with make_progress(progress) as bar:
        task = bar.add_task("evaluate similarity", total=len(split) * len(methods))
        for f, (train_ids, test_ids) in enumerate(split):
            db_ids, q_ids = np.asarray(train_ids, dtype=object), np.asarray(test_ids, dtype=object)
            if len(db_ids) < k:
                raise GraphoncError(f"fold {f} has {len(db_ids)} database patients, fewer than k={k}")
            db, q = p.loc[db_ids], p.loc[q_ids]
            lab_db = db[L.LABEL].astype(object).to_numpy() if cols.get("label") else None
            lab_q = q[L.LABEL].astype(object).to_numpy() if cols.get("label") else None
            if cols.get("survival"):
                t_db, e_db = db[L.OS_MONTHS].to_numpy(float), db[L.OS_EVENT].to_numpy(float)
                resid = martingale_residuals(t_db, e_db)
                t_q, e_q = q[L.OS_MONTHS].to_numpy(float), q[L.OS_EVENT].to_numpy(float)
            else:
                resid = t_q = e_q = None
            tab = None
            for method in methods:
                t0 = time.perf_counter()
                if method == "gnn":
                    fit = fit_model(run, list(db_ids), cfg)
                    z, _, _ = predict(fit.model, fit.graph)
                    idx = fit.graph.patient_index
                    nb = cosine_neighbours(z[idx(db_ids)], z[idx(q_ids)], k, db_ids)
                elif method == "knn_features":
                    tab = tab or TabularFeatures(mutations=True).fit(run, list(db_ids))
                    nb = cosine_neighbours(tab.transform(run, db_ids), tab.transform(run, q_ids), k, db_ids)
                elif method == "jaccard_genes":
                    sim = jaccard_matrix([genes.get(i, set()) for i in q_ids], [genes.get(i, set()) for i in db_ids])
                    nb = top_k(sim, k, db_ids)
                elif method == "snf":
                    tab = tab or TabularFeatures(mutations=True).fit(run, list(db_ids))
                    x = tab.transform(run, np.concatenate([db_ids, q_ids]))
                    clin, mut = x[:, :tab.n_clinical_], x[:, tab.n_clinical_:]
                    views, metrics = [clin], ["sqeuclidean"]
                    if mut.shape[1]:
                        views.append(mut.astype(bool).astype(float))
                        metrics.append("jaccard")
                    fused = snf_similarity(views, metrics, len(db_ids), K=min(20, len(db_ids) - 1))
                    nb = top_k(fused[len(db_ids):, :len(db_ids)], k, db_ids)
                else:  # random
                    nb = np.stack([rng.choice(len(db_ids), k, replace=False) for _ in range(len(q_ids))])
                seconds = time.perf_counter() - t0
                row = {"model": method, "fold": f, "n_queries": len(q_ids), "n_database": len(db_ids), "k": k,
                       **score_neighbours(nb, lab_q, lab_db, t_q, e_q, resid), "seconds": round(seconds, 2)}
                rows.append(row)
                neigh[(method, f)] = pd.DataFrame({"query": np.repeat(q_ids, k), "rank": np.tile(np.arange(1, k + 1),
                                                   len(q_ids)), "neighbour": db_ids[nb].ravel()})
                log.info("similarity %s fold %d: %s", method, f,
                         {m: round(row[m], 3) for m in METRICS if m in row})
                bar.advance(task)
    per_fold = pd.DataFrame(rows)
    return SimilarityEval(per_fold, summary_table(per_fold, METRICS), neigh, split)


def evaluate_similarity_stage(run_dir: Path, folds: int = 5, k: int = 10, methods: Sequence[str] = METHODS,
                              subsample: int | None = None, progress: bool = False, **overrides) -> SimilarityEval:
    """Run :func:`evaluate_similarity` and write ``<run>/similarity/`` (per-fold rows, summary, folds, neighbours)."""
    from graphonc.model.stages import markdown_table, model_config

    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)
    cfg = model_config(run, None, **overrides)
    res = evaluate_similarity(run.root, folds, k, cfg, methods, subsample, cfg.seed, progress)
    with atomic_dir(run.layout.similarity_dir) as tmp:
        write_parquet(res.per_fold, tmp / "folds.parquet")
        (tmp / "summary.md").write_text(markdown_table(res.summary), encoding="utf-8")
        (tmp / L.SUMMARY).write_text(res.summary.to_json(orient="index", indent=2, force_ascii=False),
                                          encoding="utf-8")
        (tmp / "folds.json").write_text(json.dumps([{"train": tr, "test": te} for tr, te in res.folds]),
                                        encoding="utf-8")
        nb = pd.concat([d.assign(model=m, fold=f) for (m, f), d in res.neighbours.items()], ignore_index=True)
        write_parquet(nb, tmp / "neighbours.parquet")
        (tmp / "settings.yaml").write_text(yaml.safe_dump({"folds": folds, "k": k, "methods": list(methods),
                                                           "subsample": subsample, "model": cfg.model_dump()},
                                                          sort_keys=True), encoding="utf-8")
        lineage.record(tmp, "evaluate-similarity", consumed, run_root=run.root)
    return res
