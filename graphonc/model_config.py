"""The ``model:`` section of a cohort config, typed (pydantic only: no torch import, so the config
loader validates it at ``build-graph`` time and a misspelt key is refused before any training).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class TuneSpace(BaseModel):
    """Values ``train --tune`` / ``evaluate --tune`` try, by nested CV inside the training patients."""

    model_config = ConfigDict(extra="forbid")
    lr: list[float] = [1e-3, 3e-3]
    hidden: list[int] = [32, 64]
    dropout: list[float] = [0.2, 0.4]
    aggr: list[Literal["mean", "max", "sum", "attention"]] = ["max", "attention"]
    gene_min_patients: list[int] = [3, 10]
    weight_decay: list[float] = [1e-4, 1e-3]


class ModelConfig(BaseModel):
    """Hyper-parameters and input policy of every model (GNN, MLP ablation, baselines)."""

    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(64, ge=1)
    embedding_dim: int = Field(64, ge=1)
    layers: int = Field(2, ge=0)
    dropout: float = Field(0.3, ge=0, lt=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    epochs: int = Field(300, ge=1)
    patience: int = Field(30, ge=1)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    cox_weight: float = Field(1.0, ge=0)
    class_weight: bool = True
    #: Balance the two task losses by their value at chance (cross-entropy / ln K, Cox / the Cox
    #: loss of a constant risk) so neither dominates training or early stopping.
    #: Early stopping restores the epoch of the best balanced validation loss and stops only when
    #: no task's own validation loss has improved for `patience` epochs.
    balance_tasks: bool = True
    #: Fraction of training patients whose mutation edges are hidden each epoch (missing modality).
    modality_dropout: float = Field(0.15, ge=0, lt=1)
    #: A mutation gets its own learnable embedding when this many training patients carry it.
    mutation_min_patients: int = Field(2, ge=1)
    #: Gene vocabulary, fitted on training patients: a mutated gene reaches a model (GNN/MLP
    #: mutation edges, baseline gene columns) when at least this many training patients carry it,
    #: or when it is a known driver (IntOGen/OncoKB). On whole-exome cohorts this removes the
    #: ~15k genes hit once by a passenger; on panel cohorts (every gene a cancer gene) it keeps all.
    gene_min_patients: int = Field(1, ge=1)
    #: Networks trained from seeds seed, seed+1, ... on the same graph and averaged (GNNEnsemble):
    #: removes the seed-to-seed variance of one early-stopped network on small cohorts.
    ensemble: int = Field(5, ge=1)
    #: Early stopping's validation patients: "own" = each ensemble member holds out its own
    #: share (val_fraction, drawn with the member's seed), receive-only while it trains; every
    #: training patient is a sender of the graph and in the input statistics, so the ensemble
    #: learns from all of them. "shared" = one share for all members, kept out of the graph's
    #: senders and of the statistics (used for nothing but stopping). 5x3 protocol, shared ->
    #: own: METABRIC macro-F1 0.452 -> 0.467, TCGA CESC 0.494 -> 0.573, TCGA HNSC survival C
    #: 0.566 -> 0.582, MSK prostate -0.002 to -0.004 (docs/evaluation.md item 11).
    member_validation: Literal["own", "shared"] = "own"
    #: Wide and deep: the heads add a linear risk / linear logits on the patient's own features.
    wide: bool = True
    #: Fit the wide heads to convergence as penalised Cox / logistic regression before training,
    #: deep heads starting at zero: early stopping starts from that linear model (epoch 0). Off by
    #: default: under the 5x3 protocol it raised TCGA HNSC survival C 0.566 -> 0.60 but stopped
    #: training earlier, and the embeddings lost (METABRIC precision@10 0.451 -> 0.348, neighbour-
    #: risk C 0.626 -> 0.567; MSK prostate precision@10 0.760 -> 0.715). docs/evaluation.md item 10.
    wide_warm_start: bool = False
    #: After training, each ensemble member keeps its network's risk or switches to penalised Cox
    #: with splines on its fit patients (its wide Cox head alone, the deep Cox head at zero),
    #: whichever has the lower Cox loss on its own validation share. Embeddings and class
    #: probabilities are untouched. On small cohorts early stopping ends training before the
    #: wide part reaches that fit (TCGA HNSC, 5x3 folds: GNN C 0.582 vs that baseline's 0.617).
    #: With it: HNSC 0.606 (better on 14 of 15 splits), CESC 0.553 -> 0.563, METABRIC 0.676 ->
    #: 0.677, MSK prostate unchanged (members keep the network's risk); docs/evaluation.md item 13.
    risk_fallback: bool = True
    #: How numeric clinical columns are scaled for every model (statistics from training patients):
    #: "rank_gauss" maps a value to the normal score of its training rank (skewed columns such as
    #: TMB or MSI score spread evenly, outliers bounded); "standard" is (value - mean) / sd.
    #: Penalised Cox / logistic regression on MSK prostate's clinical columns, 5x3 folds: C 0.631 ->
    #: 0.672, AUROC 0.696 -> 0.763 (better on 15 of 15 splits); METABRIC +0.003 / +0.001, TCGA
    #: CESC -0.007 / -0.001, HNSC +0.001 (scripts/numeric_scaling_linear.py).
    numeric_scaling: Literal["rank_gauss", "standard"] = "rank_gauss"
    #: Knots (in training standard-normal scores) of the wide part's linear splines: each numeric
    #: clinical column z also enters the wide heads as max(z - knot, 0) for every knot, so an
    #: effect may bend (risk rising with age faster after 70; a tumour size that stops mattering).
    #: A penalised Cox model with these hinges gained C on all four cohorts (5x3 folds: METABRIC
    #: 0.666 -> 0.676, MSK prostate 0.631 -> 0.643, CESC 0.557 -> 0.563, HNSC 0.587 -> 0.617).
    #: Empty: straight lines only.
    wide_knots: list[float] = [-1.0, -0.5, 0.0, 0.5, 1.0]
    #: Weight of gradient-boosted trees in the reported class probabilities:
    #: (1 - w) · network + w · trees, the trees being the gboost baseline's estimator on the graph's
    #: patient columns and alteration genes (graphonc/model/boosted.py). "auto": w in 0, 0.1, ..., 1
    #: with the lowest log-loss on out-of-bag predictions of the training patients (the members'
    #: own validation shares, the trees' 5-fold); a number fixes w; 0 = the network alone.
    #: Embeddings, risk and explanations stay the network's. 5x3 folds, network -> with "auto":
    #: MSK prostate AUROC 0.848 -> 0.857 (better than gboost's 0.841 beyond the interval),
    #: METABRIC macro-F1 0.467 -> 0.479, TCGA CESC AUROC 0.623 -> 0.611 (weight 0 in 9 of 15
    #: splits); a fixed 0.5 had cost CESC more (0.595 -> 0.544 on 5 splits); docs/evaluation.md item 17.
    label_boosting: Literal["auto"] | Annotated[float, Field(ge=0, le=1)] = "auto"
    use_graph: bool = True
    #: How a node aggregates its neighbours' messages in each SAGE layer (PyG aggregation name).
    #: "max" lets one driver mutation stand out among passengers instead of being averaged away
    #: (METABRIC 5-fold macro-F1 0.482 vs 0.466 with "mean", 0.441 "sum"); "attention" learns a
    #: per-message importance (softmax attention aggregation).
    aggr: Literal["mean", "max", "sum", "attention"] = "max"
    #: Learnable per-node embeddings for genes, pathways and frequent mutations (on top of features).
    id_embeddings: bool = True
    seed: int = 0
    device: str = "auto"
    #: Mini-batch training with neighbour sampling: seed patients per step (None = full batch).
    batch_size: int | None = Field(None, ge=1)
    #: Incoming edges sampled per node and edge type, one entry per layer (-1 = all).
    fanouts: list[int] = [15, 10]
    #: Model patients at diagnosis: no model sees treatments (no RECEIVED edges, no treatment
    #: features) nor any clinical.after_diagnosis / clinical.expression_derived column. False:
    #: treatments and after-diagnosis columns are inputs of EVERY model (baselines too), with a
    #: missing treatment status kept apart from "not received".
    at_diagnosis: bool = True
    #: Sensitivity analysis: add the clinical.expression_derived columns to every model's inputs.
    with_expression_derived: bool = False
    #: Nested-CV tuning (``train --tune``, ``evaluate --tune``): inner folds, wall-clock budget
    #: in seconds per tuning run, and the values tried (seeded random order, within the budget).
    tune_folds: int = Field(3, ge=2)
    tune_budget_s: float = Field(600.0, gt=0)
    tune_space: TuneSpace = TuneSpace()
