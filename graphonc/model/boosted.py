"""Gradient-boosted trees beside the network's classifier.

The class probabilities graphonc reports are the network's and the trees' blended,
``(1 - w) · network + w · trees``. With ``model.label_boosting: auto`` (the default) ``w`` is the
one of 0, 0.1, ..., 1 whose blend has the lowest class-balanced log-loss on out-of-bag
predictions of the training patients: the network's are its members' own validation shares
(scored by the members that did not train on them), the trees' come from 5-fold CV inside the
training patients (:func:`choose_weight`). A number fixes ``w``; 0 = the network alone.
Embeddings, risk, explanations and the network's own validation metrics are the network's; only
the label probabilities are blended.

Why: the network and boosted trees err differently. MSK prostate, primary vs metastatic, the
15 splits of docs/evaluation.md's plan (item 17): network AUROC 0.848, the gboost baseline 0.841,
their average 0.858, above the trees alone on all 15 splits (+0.017 [+0.007, +0.026]), while
averaging the trees with logistic regression (−0.004) or with the MLP ablation (−0.002) does not
beat the trees alone: what the trees miss is what message passing adds. A fixed 0.5 costs a
cohort where the trees are weak (TCGA CESC histology, AUROC 0.595 → 0.544 on 5 splits), hence
a weight chosen by each training set's own out-of-bag predictions.

The trees read what the network reads, from the model graph, so that a patient attached
receive-only (a test patient, a new patient of ``embed`` or the service) gets its features the
same way: the patient's encoded columns and, for every gene node, whether the patient carries a
mutation in it, an amplification, a deep deletion, or a fusion with it as a partner. A gene
column carried by fewer than ``MIN_PATIENTS`` fit patients is left out (as the gboost baseline's
gene columns). The estimator is the gboost baseline's
(:class:`graphonc.model.baselines.GradientBoostingBaseline`, same hyper-parameters, balanced
class weights), fitted on every labelled training patient.

Saved with skops (``booster.skops``, no pickle) and loaded trusting only the types in
:data:`TRUSTED`; a file holding any other type is refused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.model.data import MUTATED_IN, reverse

log = logging.getLogger("graphonc")

#: Gene → Patient edge types whose genes become 0/1 columns, in column-block order.
GENE_KINDS = (reverse(MUTATED_IN), reverse((S.PATIENT, "HAS_CNA_AMP", S.GENE)),
              reverse((S.PATIENT, "HAS_CNA_HOMDEL", S.GENE)))
#: Fusion → Patient and Gene → Fusion: a patient's fusion partner genes, the last column block
#: (the reverse edges, which a fusion attached receive-only has too).
INTO_FUSION_CARRIER = reverse(S.HAS_FUSION)
INTO_FUSION = reverse(S.FUSION_PARTNER)
#: A gene column is kept when at least this many fit patients carry that alteration; also the
#: baselines' gene columns' threshold (graphonc.model.protocol.TabularModel's default).
MIN_PATIENTS = 5
#: The trees fit on a dense float64 matrix: at most this many bytes of it. Beyond (a cohort of
#: 100k patients on a whole exome), the gene columns carried by the most fit patients are kept.
MAX_DENSE_BYTES = 2 * 1024 ** 3
#: Rows per block when predicting, so a large graph is never densified at once.
PREDICT_BLOCK = 20_000
BOOSTER_FILE = "booster.skops"
#: The only types ``booster.skops`` may hold beyond skops' defaults.
TRUSTED = ("graphonc.model.baselines.GradientBoostingBaseline",
           "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor")


def _pairs(edges: dict, etype) -> tuple[np.ndarray, np.ndarray]:
    """(source rows, destination rows) of one edge type in ``edges`` (tensors or arrays, (2, E))."""
    ei = edges.get(etype)
    if ei is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ei = np.asarray(ei)
    return ei[0].astype(np.int64), ei[1].astype(np.int64)


def _incidence(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    m.data[:] = 1.0  # duplicates (two mutations in one gene) count once
    return m


def tree_features(x_patient: np.ndarray, edges: dict, n_genes: int, n_fusions: int = 0) -> sp.csr_matrix:
    """(N, F + 4·G) sparse: the patients' encoded columns, then per gene node a 0/1 column for each
    of mutated, amplified, deeply deleted and fusion partner.

    Args:
        x_patient: (N, F) the model graph's patient features (rows = patients).
        edges: edge_index by edge type; Gene/Fusion → Patient edges end at rows of ``x_patient``.
        n_genes: G, the gene nodes of the graph.
        n_fusions: fusion nodes (rows of Fusion → Patient senders and Gene → Fusion receivers).
    """
    n = x_patient.shape[0]
    blocks = [sp.csr_matrix(np.asarray(x_patient, dtype=np.float32))]
    for kind in GENE_KINDS:
        g, p = _pairs(edges, kind)
        blocks.append(_incidence(p, g, (n, n_genes)))
    f, p = _pairs(edges, INTO_FUSION_CARRIER)
    gg, fg = _pairs(edges, INTO_FUSION)
    carriers = _incidence(p, f, (n, n_fusions))
    partners = _incidence(fg, gg, (n_fusions, n_genes))
    fused = (carriers @ partners).tocsr()
    fused.data[:] = 1.0
    blocks.append(fused)
    return sp.hstack(blocks, format="csr")


def graph_tree_features(data) -> sp.csr_matrix:
    """:func:`tree_features` of every patient of a model graph (a PyG ``HeteroData``)."""
    return tree_features(data[S.PATIENT].x.numpy(), {e: data[e].edge_index for e in data.edge_types},
                         data[S.GENE].num_nodes if S.GENE in data.node_types else 0,
                         data[S.FUSION].num_nodes if S.FUSION in data.node_types else 0)


#: The weights ``model.label_boosting: auto`` chooses among.
WEIGHTS = tuple(i / 10 for i in range(11))  # Python floats: saved and reloaded as the same number
#: Folds of the trees' out-of-bag predictions inside the training patients.
OOB_FOLDS = 5
#: Fewer labelled out-of-bag patients than this: "auto" keeps the network alone (w = 0).
MIN_OOB_PATIENTS = 20


@dataclass
class LabelBooster:
    """The fitted trees, the columns of :func:`tree_features` they read and their weight (with
    "auto": the out-of-bag log-loss of every weight tried). A weight of 0 holds no trees."""

    columns: np.ndarray          # (C,) kept column indices of tree_features
    estimator: object | None     # fitted GradientBoostingBaseline; None with weight 0
    weight: float
    oob_log_loss: dict[float, float] | None = None

    @property
    def active(self) -> bool:
        """Whether the trees change the class probabilities at all."""
        return self.estimator is not None and self.weight > 0

    @classmethod
    def fit(cls, features: sp.csr_matrix, y: np.ndarray, rows: np.ndarray, n_classes: int, n_clinical: int,
            seed: int, weight: float) -> "LabelBooster":
        """Fit on patient ``rows`` of ``features`` with labels ``y`` (class indices of those rows);
        the first ``n_clinical`` columns (the encoded clinical ones) are always kept."""
        from graphonc.model.baselines import GradientBoostingBaseline

        sub = features[rows]
        carried = np.asarray(sub.sum(axis=0)).ravel()
        genes = np.flatnonzero(carried >= MIN_PATIENTS)
        genes = genes[genes >= n_clinical]
        room = max(MAX_DENSE_BYTES // (8 * max(len(rows), 1)) - n_clinical, 0)
        if len(genes) > room:  # the most carried first; ties by column, so the choice is deterministic
            log.info("label trees: %d of %d gene columns kept (%d patients, within %d GB dense)", room,
                     len(genes), len(rows), MAX_DENSE_BYTES // 1024 ** 3)
            genes = np.sort(genes[np.lexsort((genes, -carried[genes]))[:room]])
        keep = np.concatenate([np.arange(n_clinical), genes])
        est = GradientBoostingBaseline(n_classes=n_classes, random_state=seed)
        est.fit(sub[:, keep].toarray(), np.asarray(y, dtype=np.int64))
        return cls(keep, est, weight)

    def predict_proba(self, features: sp.csr_matrix) -> np.ndarray:
        """(N, K) class probabilities of the rows of ``features`` (densified a block of rows at a time)."""
        cols = features[:, self.columns]
        if cols.shape[0] == 0:
            return np.zeros((0, self.estimator.n_classes_))
        return np.vstack([self.estimator.predict_proba(cols[i:i + PREDICT_BLOCK].toarray())
                          for i in range(0, cols.shape[0], PREDICT_BLOCK)])

    def blend(self, network: np.ndarray, features: sp.csr_matrix) -> np.ndarray:
        """``(1 - weight) · network + weight · trees`` (N, K) for the rows of ``features``."""
        if not self.active:
            return network
        # in float64 whatever the network's dtype, so a reloaded model reproduces it bit for bit
        return (1.0 - self.weight) * np.asarray(network, dtype=np.float64) + self.weight * self.predict_proba(features)

    def save(self, folder: Path) -> None:
        import skops.io as sio

        sio.dump(self.estimator, Path(folder) / BOOSTER_FILE)

    @classmethod
    def load(cls, folder: Path, columns: list[int], weight: float) -> "LabelBooster":
        import skops.io as sio

        path = Path(folder) / BOOSTER_FILE
        untrusted = sio.get_untrusted_types(file=path)
        if set(untrusted) - set(TRUSTED):
            raise GraphoncError(f"{path}: holds types graphonc does not load "
                                f"({sorted(set(untrusted) - set(TRUSTED))[:3]}). Fix: retrain the model "
                                "with `graphonc train` rather than using a booster file from elsewhere.")
        return cls(np.asarray(columns, dtype=np.int64), sio.load(path, trusted=list(untrusted)), weight)


def balanced_log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean −log p(true class), each class weighing the same (the label metrics are class-balanced)."""
    counts = np.bincount(y)
    w = 1.0 / counts[y]
    return float(-(w * np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))).sum() / w.sum())


def choose_weight(network: np.ndarray, trees: np.ndarray, y: np.ndarray) -> tuple[float, dict[float, float]]:
    """(the weight of :data:`WEIGHTS` whose blend has the lowest :func:`balanced_log_loss`, the
    loss of every weight); ties go to the smaller weight (more of the network)."""
    losses = {w: balanced_log_loss((1 - w) * network + w * trees, y) for w in WEIGHTS}
    return min(WEIGHTS, key=lambda w: (round(losses[w], 12), w)), losses


def out_of_fold_trees(features: sp.csr_matrix, y: np.ndarray, rows: np.ndarray, n_classes: int,
                      n_clinical: int, seed: int) -> np.ndarray:
    """(len(rows), K): each of patient ``rows``' tree probabilities from trees fitted on the other
    folds (stratified, :data:`OOB_FOLDS` or the smallest class's size, at least 2)."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    k = int(min(OOB_FOLDS, counts[counts > 0].min()))
    out = np.zeros((len(rows), n_classes))
    for tr, te in StratifiedKFold(max(k, 2), shuffle=True, random_state=seed).split(rows, y):
        trees = LabelBooster.fit(features, y[tr], rows[tr], n_classes, n_clinical, seed, 1.0)
        out[te] = trees.predict_proba(features[rows[te]])
    return out
