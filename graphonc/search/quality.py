"""How good are the neighbours? Leakage-free evaluation of similarity on held-out folds.

Runs through the one CV loop of ``graphonc evaluate`` (:func:`graphonc.model.protocol.cross_validate`,
same fold plans, same ``--folds-file`` / ``--repeats``): for each (repeat, fold) the *training*
patients form the database and each *test* patient is a query. Every method sees only the
training patients' statistics:

* ``gnn`` / ``mlp``: one model fit per fold; test patients are receive-only in the fold graph,
  so their embeddings are inductive. Cosine kNN. When ``<run>/eval`` holds the fold embeddings
  of an ``evaluate`` run on the same fold plan, they are reused instead of training again.
* ``knn_features``: cosine kNN on the raw features (scaled clinical + mutated-gene
  indicators, :class:`graphonc.model.tabular.TabularFeatures` fitted on the training fold).
* ``jaccard_genes``: Jaccard similarity of the sets of altered genes (mutated; amplified, deeply
  deleted and fused where the run has copy number / structural variants; ties broken by id).
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

import logging
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
from graphonc.model.evaluate import compare_to_best_baseline, summary_table
from graphonc.model.folds import Split, eligible_patients, make_plan, read_plan, splits, write_plan
from graphonc.model.protocol import GNNModel, Prediction, cross_validate
from graphonc.model_config import ModelConfig
from graphonc.search.index import best_first, id_ranks, normalised

log = logging.getLogger("graphonc")

METHODS = ("gnn", "mlp", "knn_features", "jaccard_genes", "snf", "random")
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
    """Column indices of the k largest entries per row of ``sim`` (m, n); similarities equal to
    ``TIE_DECIMALS`` decimals are ties, broken by id order."""
    sim = np.asarray(sim)
    return best_first(sim, np.broadcast_to(id_ranks(db_ids), sim.shape))[:, :k]


def cosine_neighbours(db: np.ndarray, q: np.ndarray, k: int, db_ids: np.ndarray) -> np.ndarray:
    """(m, k) database rows nearest (cosine) to each query row; exact. The dot products are float64
    so that rounding to ``TIE_DECIMALS`` merges only rounding noise (float64's is ~1e-16)."""
    return top_k(normalised(q).astype(np.float64) @ normalised(db).astype(np.float64).T, k, db_ids)


def gene_sets(run: GraphRun) -> dict[str, set[str]]:
    """Per patient, its altered genes: mutated genes, plus ``amp:``/``homdel:`` genes and ``fusion:``
    ids where the run has copy number / structural variants (what the GNN's graph links)."""
    from graphonc.model.tabular import patient_alteration_pairs, patient_gene_pairs

    pairs = pd.concat([patient_gene_pairs(run), patient_alteration_pairs(run)], ignore_index=True)
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


# ---------------------------------------------------------------------------------- methods


class FeatureSpace:
    """``knn_features``: the scaled clinical + mutated-gene features (fitted on the training
    patients, same input policy as every model) as the embedding."""

    tasks = ("similarity",)

    def __init__(self, cfg: ModelConfig, name: str = "knn_features") -> None:
        self.cfg, self.name = cfg, name

    def fit(self, run: GraphRun, train_ids) -> "FeatureSpace":
        from graphonc.model.inputs import model_inputs
        from graphonc.model.tabular import TabularFeatures

        self.tf_ = TabularFeatures(mutations=True, inputs=model_inputs(run, self.cfg)).fit(run, list(train_ids))
        return self

    def predict(self, run: GraphRun, ids) -> Prediction:
        return Prediction(list(ids), embedding=self.tf_.transform(run, list(ids)))


class GeneSets:
    """``jaccard_genes``: Jaccard similarity of the sets of mutated genes (ties broken by id)."""

    tasks = ("similarity",)
    name = "jaccard_genes"

    def fit(self, run: GraphRun, train_ids) -> "GeneSets":
        self.genes_ = gene_sets(run)
        return self

    def predict(self, run: GraphRun, ids) -> Prediction:
        return Prediction(list(ids))

    def neighbours(self, run: GraphRun, db_ids: np.ndarray, q_ids: np.ndarray, k: int) -> np.ndarray:
        g = self.genes_
        return top_k(jaccard_matrix([g.get(i, set()) for i in q_ids], [g.get(i, set()) for i in db_ids]), k, db_ids)


class SNF(FeatureSpace):
    """``snf``: similarity network fusion of a clinical and a mutation view over database + queries
    (transductive and unsupervised: it sees the queries' features, never their labels or outcomes)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg, "snf")

    def neighbours(self, run: GraphRun, db_ids: np.ndarray, q_ids: np.ndarray, k: int) -> np.ndarray:
        tab = self.tf_
        x = tab.transform(run, np.concatenate([db_ids, q_ids]))
        clin, mut = x[:, :tab.n_clinical_], x[:, tab.n_clinical_:]
        views, metrics = [clin], ["sqeuclidean"]
        if mut.shape[1]:
            views.append(mut.astype(bool).astype(float))
            metrics.append("jaccard")
        fused = snf_similarity(views, metrics, len(db_ids), K=min(20, len(db_ids) - 1))
        return top_k(fused[len(db_ids):, :len(db_ids)], k, db_ids)


class RandomNeighbours:
    """``random``: k random database patients (seeded), the chance level."""

    tasks = ("similarity",)
    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def fit(self, run: GraphRun, train_ids) -> "RandomNeighbours":
        return self

    def predict(self, run: GraphRun, ids) -> Prediction:
        return Prediction(list(ids))

    def neighbours(self, run: GraphRun, db_ids: np.ndarray, q_ids: np.ndarray, k: int) -> np.ndarray:
        return np.stack([self.rng.choice(len(db_ids), k, replace=False) for _ in range(len(q_ids))])


class StoredEmbeddings:
    """A fold model ``evaluate`` already trained: its stored embeddings of this (repeat, fold)."""

    tasks = ("similarity",)

    def __init__(self, name: str, table: pd.DataFrame) -> None:
        self.name, self.table = name, table

    def fit(self, run: GraphRun, train_ids) -> "StoredEmbeddings":
        self.train_ = set(train_ids)
        return self

    def for_split(self, split: Split) -> "StoredEmbeddings":
        self.split = split
        return self

    def predict(self, run: GraphRun, ids) -> Prediction:
        t = self.table
        sub = t[(t["repeat"] == self.split.repeat) & (t["fold"] == self.split.fold)].set_index(S.ID)
        return Prediction(list(ids), embedding=np.stack(sub.loc[list(ids), "embedding"].to_numpy()))


class NeighbourScorer:
    """The ``evaluate-similarity`` scorer: k neighbours per query, precision@k and neighbour-risk C."""

    def __init__(self, run: GraphRun, k: int) -> None:
        self.k, self.neighbours = k, {}
        self.p = run.nodes(S.PATIENT).set_index(S.ID)
        self.cols = run.patient_columns()

    def __call__(self, run: GraphRun, split: Split, model, pred: Prediction) -> dict:
        db_ids, q_ids = np.asarray(split.train, dtype=object), np.asarray(split.test, dtype=object)
        k = self.k
        if len(db_ids) < k:
            raise GraphoncError(f"repeat {split.repeat} fold {split.fold} has {len(db_ids)} database patients, "
                                f"fewer than k={k}")
        if hasattr(model, "neighbours"):
            nb = model.neighbours(run, db_ids, q_ids, k)
        else:
            nb = cosine_neighbours(pred.embedding[pred.rows(db_ids)], pred.embedding[pred.rows(q_ids)], k, db_ids)
        db, q = self.p.loc[db_ids], self.p.loc[q_ids]
        lab = self.cols.get("label")
        if self.cols.get("survival"):
            resid = martingale_residuals(db[L.OS_MONTHS].to_numpy(float), db[L.OS_EVENT].to_numpy(float))
            t_q, e_q = q[L.OS_MONTHS].to_numpy(float), q[L.OS_EVENT].to_numpy(float)
        else:
            resid = t_q = e_q = None
        self.neighbours[(model.name, split.repeat, split.fold)] = pd.DataFrame(
            {"query": np.repeat(q_ids, k), "rank": np.tile(np.arange(1, k + 1), len(q_ids)),
             "neighbour": db_ids[nb].ravel()})
        return {"n_queries": len(q_ids), "n_database": len(db_ids), "k": k,
                **score_neighbours(nb, q[L.LABEL].astype(object).to_numpy() if lab else None,
                                   db[L.LABEL].astype(object).to_numpy() if lab else None, t_q, e_q, resid)}


# ---------------------------------------------------------------------------------- evaluation


@dataclass
class SimilarityEval:
    per_fold: pd.DataFrame                 # model, repeat, fold, n_queries, precision_at_k, c_index, seconds
    summary: pd.DataFrame                  # mean ± sd per model
    neighbours: dict = field(default_factory=dict)   # (model, repeat, fold) -> DataFrame query, rank, neighbour
    plan: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    reused: list = field(default_factory=list)       # methods whose fold models came from <run>/eval


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


def stored_fold_embeddings(run: GraphRun, plan: pd.DataFrame) -> pd.DataFrame | None:
    """``<run>/eval/embeddings.parquet`` when ``<run>/eval/folds.csv`` is exactly ``plan``, else None."""
    folder = run.layout.eval_dir
    if not (folder / "folds.csv").exists() or not (folder / L.EMBEDDINGS).exists():
        return None
    used = pd.read_csv(folder / "folds.csv", dtype={"patient_id": str})
    key = ["patient_id", "repeat", "fold"]
    a = used[key].sort_values(key).reset_index(drop=True)
    b = plan[key].sort_values(key).reset_index(drop=True)
    if len(a) != len(b) or not (a.astype(str) == b.astype(str)).all().all():
        return None
    return pd.read_parquet(folder / L.EMBEDDINGS)


def evaluate_similarity(run_dir: Path, folds: int = 5, k: int = 10, cfg: ModelConfig | None = None,
                        methods: Sequence[str] = METHODS, subsample: int | None = None, seed: int = 0,
                        progress: bool = False, repeats: int = 1, folds_file: Path | None = None,
                        reuse: bool = True) -> SimilarityEval:
    """Per (repeat, fold) and method: precision@k of the label and C-index of the neighbour-mean risk.

    With ``reuse`` the GNN/MLP fold embeddings of an earlier ``evaluate`` on the same fold plan
    (``<run>/eval``) are used instead of training the fold models again.
    """
    from graphonc.model.stages import model_config

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise GraphoncError(f"unknown similarity method(s) {bad}; expected some of {', '.join(METHODS)}.")
    if k < 1:
        raise GraphoncError(f"-k must be at least 1, got {k}")
    run = GraphRun.open(run_dir)
    cfg = cfg or model_config(run)
    plan = read_plan(folds_file, run) if folds_file is not None else make_plan(run, folds, repeats, cfg.seed)
    keep = _subsample(run, subsample, seed)
    if keep is not None:
        plan = plan[plan["patient_id"].isin(set(keep))].reset_index(drop=True)
    stored = stored_fold_embeddings(run, plan) if reuse and keep is None else None
    factories, reused = {}, []
    for m in methods:
        if m in ("gnn", "mlp"):
            if stored is not None and (stored["model"] == m).any():
                factories[m] = (lambda name=m: StoredEmbeddings(name, stored[stored["model"] == name]))
                reused.append(m)
            else:
                c = cfg if m == "gnn" else cfg.model_copy(update={"use_graph": False})
                factories[m] = (lambda c=c, name=m: GNNModel(c, name))
        elif m == "knn_features":
            factories[m] = lambda: FeatureSpace(cfg)
        elif m == "jaccard_genes":
            factories[m] = GeneSets
        elif m == "snf":
            factories[m] = lambda: SNF(cfg)
        else:
            rnd = RandomNeighbours(seed)  # one generator across folds, as before
            factories[m] = lambda: rnd
    scorer = NeighbourScorer(run, k)
    rows = []
    for split in splits(plan):  # per split, so stored embeddings know their (repeat, fold)
        wrapped = {n: (lambda f=f, s=split: _bind(f(), s)) for n, f in factories.items()}
        rows.append(cross_validate(run, [split], wrapped, (scorer,), progress=progress))
    per_fold = pd.concat(rows, ignore_index=True)
    comparison = compare_to_best_baseline(per_fold, METRICS, own=("gnn", "mlp"))
    return SimilarityEval(per_fold, summary_table(per_fold, METRICS), scorer.neighbours, plan, comparison, reused)


def _bind(model, split: Split):
    return model.for_split(split) if isinstance(model, StoredEmbeddings) else model


def evaluate_similarity_stage(run_dir: Path, folds: int = 5, k: int = 10, methods: Sequence[str] = METHODS,
                              subsample: int | None = None, progress: bool = False, repeats: int = 1,
                              folds_file: Path | None = None, reuse: bool = True,
                              **overrides) -> SimilarityEval:
    """Run :func:`evaluate_similarity` and write ``<run>/similarity/`` (per-fold rows, summary,
    comparison with the best baseline method, the fold plan as folds.csv, neighbours)."""
    from graphonc.model.stages import comparison_markdown, markdown_table, model_config

    run = GraphRun.open(run_dir)
    consumed = lineage.fingerprint(run.root, manifest=run.manifest)
    cfg = model_config(run, None, **overrides)
    res = evaluate_similarity(run.root, folds, k, cfg, methods, subsample, cfg.seed, progress, repeats,
                              folds_file, reuse)
    with atomic_dir(run.layout.similarity_dir) as tmp:
        write_parquet(res.per_fold, tmp / "per_fold.parquet")
        (tmp / "summary.md").write_text(markdown_table(res.summary), encoding="utf-8")
        (tmp / L.SUMMARY).write_text(res.summary.to_json(orient="index", indent=2, force_ascii=False),
                                          encoding="utf-8")
        (tmp / "comparison.json").write_text(res.comparison.to_json(orient="records", indent=2), encoding="utf-8")
        (tmp / "comparison.md").write_text(comparison_markdown(res.comparison), encoding="utf-8")
        write_plan(res.plan, tmp / "folds.csv")
        nb = pd.concat([d.assign(model=m, repeat=r, fold=f) for (m, r, f), d in res.neighbours.items()],
                       ignore_index=True)
        write_parquet(nb, tmp / "neighbours.parquet")
        (tmp / "settings.yaml").write_text(yaml.safe_dump({"folds": folds, "repeats": repeats, "k": k,
                                                           "methods": list(methods), "subsample": subsample,
                                                           "reused_fold_models": res.reused,
                                                           "model": cfg.model_dump()},
                                                          sort_keys=True), encoding="utf-8")
        lineage.record(tmp, "evaluate-similarity", consumed, run_root=run.root)
    return res
