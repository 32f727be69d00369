"""Training the GNN: joint diagnosis (cross-entropy) + survival (Cox) with early stopping.

Full-batch on cohort-sized graphs; with ``batch_size`` set, mini-batches of seed patients with
sampled neighbourhoods (:mod:`graphonc.model.sampling`; modality dropout is full-batch only).
A patient missing a label or survival only loses that
loss term. Validation patients are attached receive-only (like test patients), so early
stopping sees the same conditions as evaluation.
"""
from __future__ import annotations

import copy
import logging
import random
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torchsurv.loss.cox import neg_partial_log_likelihood

from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.model.data import MUTATED_IN, ModelGraph, from_senders, model_graph, reverse
from graphonc.model.boosted import (MIN_OOB_PATIENTS, LabelBooster, choose_weight, graph_tree_features,
                                    out_of_fold_trees)
from graphonc.model.gnn import GNNEnsemble, ModelConfig, PatientGNN, spline_columns
from graphonc.model.sampling import NeighborSampler
from graphonc.progress import make_progress

log = logging.getLogger("graphonc")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood, Breslow ties (torchsurv); 0 without events."""
    if event.sum() == 0:
        return risk.sum() * 0.0
    with warnings.catch_warnings():  # torchsurv warns on every call that ties exist; we chose Breslow for them
        warnings.filterwarnings("ignore", message="Ties in `time` detected")
        return neg_partial_log_likelihood(risk, event.bool(), time, ties_method="breslow", reduction="mean")


@dataclass
class Targets:
    """Index tensors of the patients that carry each loss term."""

    label_idx: torch.Tensor
    surv_idx: torch.Tensor


def _targets(graph: ModelGraph, idx: np.ndarray) -> Targets:
    p = graph.data[S.PATIENT]
    idx_t = torch.as_tensor(idx, dtype=torch.long)
    lab = idx_t[p.y[idx_t] >= 0] if "y" in p else idx_t[:0]
    surv = idx_t[p.has_survival[idx_t]] if "has_survival" in p else idx_t[:0]
    return Targets(lab, surv)


@dataclass
class FitResult:
    model: PatientGNN | GNNEnsemble
    graph: ModelGraph
    cfg: ModelConfig
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    #: The graph's sender patients (every training patient, or with member_validation "shared"
    #: those outside the shared validation share) and the patients some member held out.
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    #: Task heads still at chance on the validation patients after training (see chance_heads).
    at_chance: list[str] = field(default_factory=list)
    task_best_epochs: dict = field(default_factory=dict)
    #: Best epoch of each ensemble member (``best_epoch`` and ``history`` are the first member's).
    member_best_epochs: list[int] = field(default_factory=list)
    #: Where each member's risk comes from: "network", or "linear" where penalised Cox with
    #: splines did better on its validation share (``cfg.risk_fallback``, Trainer.keep_better_risk).
    member_risk: list[str] = field(default_factory=list)
    #: Validation predictions, one row per graph patient (NaN outside ``val_ids``): each held-out
    #: patient's class probabilities and risk averaged over the members that did not train on it.
    val_proba: np.ndarray | None = None
    val_risk: np.ndarray | None = None
    #: Gradient-boosted trees blended into the class probabilities (``cfg.label_boosting``;
    #: graphonc.model.boosted); None without a label or with ``label_boosting: 0``; with "auto"
    #: choosing a weight of 0, one without trees that keeps the out-of-bag losses.
    booster: LabelBooster | None = None


def split_validation(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ids = sorted(ids)
    perm = rng.permutation(len(ids))
    n_val = int(round(len(ids) * fraction))
    val = sorted(ids[i] for i in perm[:n_val])
    fit = sorted(ids[i] for i in perm[n_val:])
    return fit, val


class Trainer:
    """Fits a :class:`PatientGNN` on one set of training patients (see :func:`fit_model`)."""

    def __init__(self, graph: ModelGraph, cfg: ModelConfig, device: torch.device,
                 held_out: np.ndarray | None = None) -> None:
        """``held_out``: patient rows that send no messages while this network trains (its own
        validation share, attached receive-only like test patients) although the graph has them
        as senders; the trained network then runs on the whole graph."""
        self.graph, self.cfg, self.device = graph, cfg, device
        d = graph.data
        self.x = {t: d[t].x.to(device) for t in d.node_types if "x" in d[t]}
        self.edges_cpu = {e: d[e].edge_index for e in d.edge_types}
        if held_out is not None and len(held_out):
            sends = torch.ones(d[S.PATIENT].num_nodes, dtype=torch.bool)
            sends[torch.as_tensor(held_out, dtype=torch.long)] = False
            self.edges_cpu = from_senders(self.edges_cpu, sends)
        self.edges = {e: ei.to(device) for e, ei in self.edges_cpu.items()}
        self.vocab = {t: v.to(device) for t, v in graph.vocab_dict.items()}
        p = d[S.PATIENT]
        self.y = p.y.to(device) if "y" in p else None
        self.time = p.time.to(device) if "time" in p else None
        self.event = p.event.to(device) if "event" in p else None
        self.has_surv = p.has_survival.to(device) if "has_survival" in p else None
        self.sampler: NeighborSampler | None = None  # built on first mini-batch pass
        in_dims = {t: x.shape[1] for t, x in self.x.items()}
        self.model = PatientGNN(in_dims, list(self.edges), {t: len(v) for t, v in graph.vocab.items()},
                                len(graph.label_classes), cfg,
                                spline_columns(graph.encoder.feature_names_, graph.encoder.numeric)).to(device)

    def loss(self, logits, risk, t: Targets, class_weight, rows: torch.Tensor | None = None,
             norm: tuple[float, float] = (1.0, 1.0)) -> tuple[torch.Tensor, float, float]:
        """Joint loss over the patients in ``t``; ``rows`` maps output rows to graph patients (mini-batches).

        ``norm`` = (cross-entropy, Cox loss) at chance: with ``balance_tasks`` each term is divided by
        its chance value, so both start near 1 and neither task's scale dominates the sum (a Cox
        term of 3.5 next to a cross-entropy of 1.6 otherwise steers training and early stopping).
        Returns (loss, raw cross-entropy, raw Cox loss).
        """
        y, time, event = self.y, self.time, self.event
        if rows is not None:
            y, time, event = (v[rows] if v is not None else None for v in (y, time, event))
        ce = (F.cross_entropy(logits[t.label_idx], y[t.label_idx], weight=class_weight)
              if y is not None and len(t.label_idx) else logits.sum() * 0.0)
        cx = (cox_loss(risk[t.surv_idx], time[t.surv_idx], event[t.surv_idx])
              if time is not None and len(t.surv_idx) > 1 else risk.sum() * 0.0)
        ce0, cx0 = norm if self.cfg.balance_tasks else (1.0, 1.0)
        return ce / ce0 + self.cfg.cox_weight * cx / cx0, ce.item(), cx.item()

    def chance_losses(self, t: Targets) -> tuple[float, float]:
        """(cross-entropy, Cox loss) of an uninformative model on the patients of ``t``: ln K for
        uniform class probabilities (whatever the class weights), the Cox loss of a constant risk."""
        k = max(len(self.graph.label_classes), 2)
        ce0 = float(np.log(k))
        cx0 = 1.0
        if self.time is not None and len(t.surv_idx) > 1:
            zero = torch.zeros(len(t.surv_idx), device=self.device)
            cx0 = float(cox_loss(zero, self.time[t.surv_idx], self.event[t.surv_idx])) or 1.0
        return ce0, cx0

    def warm_start_wide(self, fit_t: Targets, class_weight: torch.Tensor | None) -> None:
        """Fit the wide heads alone on the fit patients before the network trains, as graphonc's
        linear baselines are fitted: the wide Cox head as penalised Cox (mean partial likelihood
        + ½·0.1·‖β‖², the Cox baseline's L2 penalizer; lifelines applies it to standardised
        columns, so the fits agree closely, not exactly) and the wide classifier as logistic
        regression (weighted mean cross-entropy + ‖W‖² / (2·C·n), scikit-learn's C = 0.1), both to
        convergence (L-BFGS). The deep heads start at zero, so before the first step the network
        *is* that linear model (with splines); early stopping can keep it, and message passing
        has to improve on it. Without this the wide part trained only as far as early stopping
        let it (10-30 epochs on some cohorts), short of the penalised fit it is meant to contain.
        """
        m = self.model
        if m.wide_cox is None:
            return
        x = m.wide_inputs(self.x[S.PATIENT]).detach()
        with torch.no_grad():
            for head in (m.classifier, m.cox):
                for p in head.parameters():
                    p.zero_()
        w = self.penalised_wide_cox(fit_t.surv_idx)
        if w is not None:
            with torch.no_grad():
                m.wide_cox.weight.copy_(w)
        lab = fit_t.label_idx
        if self.y is not None and len(lab) and len(self.graph.label_classes) > 1:
            head, n = m.wide_classifier, len(lab)
            _lbfgs(list(head.parameters()), lambda: F.cross_entropy(head(x[lab]), self.y[lab], weight=class_weight)
                   + head.weight.pow(2).sum() / (2 * WARM_START_C * n))

    def _cox_defined(self, rows: torch.Tensor) -> bool:
        """Whether patients ``rows`` can fit or score a Cox model: survival data, two patients, an event."""
        return self.time is not None and len(rows) >= 2 and bool(self.event[rows].sum() > 0)

    def penalised_wide_cox(self, rows: torch.Tensor) -> torch.Tensor | None:
        """Weights (1, F_wide) of penalised Cox on the wide part's inputs (the patient's features
        and their splines) of patients ``rows``, fitted to convergence: mean partial likelihood +
        ½·0.1·‖β‖², the Cox baseline's L2 penalizer (lifelines applies it to standardised columns,
        so the fits agree closely, not exactly). None without two patients or an event."""
        m = self.model
        if m.wide_cox is None or not self._cox_defined(rows):
            return None
        x = m.wide_inputs(self.x[S.PATIENT][rows]).detach()  # row-wise: only these rows' hinges
        time, event = self.time[rows], self.event[rows]
        w = torch.zeros_like(m.wide_cox.weight, requires_grad=True)
        _lbfgs([w], lambda: cox_loss((x @ w.T).squeeze(-1), time, event) + 0.05 * w.pow(2).sum())
        return w.detach()

    def keep_better_risk(self, fit_t: Targets, val_t: Targets) -> str:
        """After training: keep the network's risk, or switch to the linear one, whichever has the
        lower Cox loss on this member's validation patients; returns "network" or "linear".

        The linear risk is penalised Cox with splines on the fit patients (the wide Cox head
        alone, :meth:`penalised_wide_cox`; the deep Cox head set to zero), so the switch changes
        two weights of the same network: embeddings and class probabilities stay as trained, and
        explanations, the new-patient path and saved models need nothing new. Why: on a small
        cohort early stopping ends training before the wide part reaches that fit, and message
        passing may add nothing to survival; penalised Cox with splines then beats the network
        (TCGA HNSC, 5x3 folds: C 0.617 vs 0.582, docs/evaluation.md item 13).
        """
        m, v = self.model, val_t.surv_idx
        if not self._cox_defined(v):
            return "network"
        w = self.penalised_wide_cox(fit_t.surv_idx)
        if w is None:
            return "network"
        m.eval()
        with torch.no_grad():
            _, _, risk = m(self.x, self.edges, self.vocab)
            network = float(cox_loss(risk[v], self.time[v], self.event[v]))
            x = m.wide_inputs(self.x[S.PATIENT][v])
            linear = float(cox_loss((x @ w.T).squeeze(-1), self.time[v], self.event[v]))
            if linear >= network:
                return "network"
            m.wide_cox.weight.copy_(w)
            m.cox.weight.zero_()
        return "linear"

    def _dropped_edges(self, fit_idx: torch.Tensor, gen: torch.Generator) -> tuple[dict, dict]:
        """Hide the mutation modality of a random share of training patients (missing-modality training)."""
        n = int(round(len(fit_idx) * self.cfg.modality_dropout))
        if n == 0:
            return self.edges, self.x
        drop = fit_idx[torch.randperm(len(fit_idx), generator=gen)[:n]].to(self.device)
        mask = torch.zeros(self.x[S.PATIENT].shape[0], dtype=torch.bool, device=self.device)
        mask[drop] = True
        edges = dict(self.edges)
        for e in (S.HAS_MUTATION, MUTATED_IN):
            r = reverse(e)
            if r in edges:
                edges[r] = edges[r][:, ~mask[edges[r][1]]]
        x = dict(self.x)
        xp = x[S.PATIENT].clone()
        xp[mask, -1] = 0.0  # the mutations_assayed flag (last patient feature)
        x[S.PATIENT] = xp
        return edges, x

    def _minibatch_pass(self, idx: np.ndarray, class_weight, opt=None, gen: torch.Generator | None = None,
                        norm: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float, float]:
        """One pass over patients ``idx`` in sampled mini-batches; a training pass when ``opt`` is given.

        The Cox risk set is the batch (the usual mini-batch approximation of the partial
        likelihood). Returns the seed-weighted mean (loss, ce, cox).
        """
        cfg, d = self.cfg, self.graph.data
        if self.sampler is None:
            self.sampler = NeighborSampler(self.edges_cpu,
                                           {t: d[t].num_nodes for t in d.node_types}, cfg.fanouts, cfg.seed)
        x_cpu = {t: d[t].x for t in d.node_types if "x" in d[t]}  # the graph's own (CPU) tensors: sampling
        vocab_cpu = self.graph.vocab_dict                             # selects rows there, then moves them
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        if opt is not None:
            idx_t = idx_t[torch.randperm(len(idx_t), generator=gen)]
            self.model.train()
        else:
            self.model.eval()
        totals, n = np.zeros(3), 0
        for start in range(0, len(idx_t), cfg.batch_size):
            seeds = idx_t[start:start + cfg.batch_size]
            sub = self.sampler.sample(seeds)
            x = {t: v.to(self.device) for t, v in sub.select(x_cpu).items()}
            vocab = {t: v.to(self.device) for t, v in sub.select(vocab_cpu).items()}
            edges = {e: ei.to(self.device) for e, ei in sub.edges.items()}
            seeds_dev = seeds.to(self.device)
            local = torch.arange(len(seeds), device=self.device)
            targets = Targets(local[self.y[seeds_dev] >= 0] if self.y is not None else local[:0],
                              local[self.has_surv[seeds_dev]] if self.has_surv is not None else local[:0])
            with torch.set_grad_enabled(opt is not None):
                _, logits, risk = self.model(x, edges, vocab)
                loss, ce, cx = self.loss(logits[:len(seeds)], risk[:len(seeds)], targets, class_weight,
                                         rows=seeds_dev, norm=norm)
                if opt is not None:
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            totals += np.array([loss.item(), ce, cx]) * len(seeds)
            n += len(seeds)
        return tuple(totals / max(n, 1))

    def _validation_loss(self, val_idx: np.ndarray | None, val_t: Targets, class_weight, norm
                         ) -> tuple[float, float, float]:
        """(loss, ce, cox) on the validation patients with the current weights (``val_idx`` for
        mini-batches; full batch reads the patients from ``val_t``)."""
        if self.cfg.batch_size:
            return self._minibatch_pass(val_idx, class_weight, norm=norm)
        self.model.eval()
        with torch.no_grad():
            _, logits, risk = self.model(self.x, self.edges, self.vocab)
            vloss, vce, vcx = self.loss(logits, risk, val_t, class_weight, norm=norm)
        return float(vloss), vce, vcx

    def _full_batch_epoch(self, fit_all: torch.Tensor, fit_t: Targets, val_t: Targets, class_weight, opt,
                          gen: torch.Generator, norms: dict) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """One optimiser step on the whole graph, then the validation loss; ((loss, ce, cox), (val...))."""
        self.model.train()
        edges, x = self._dropped_edges(fit_all, gen)
        opt.zero_grad()
        _, logits, risk = self.model(x, edges, self.vocab)
        loss, ce, cx = self.loss(logits, risk, fit_t, class_weight, norm=norms["fit"])
        loss.backward()
        opt.step()
        return (loss.item(), ce, cx), self._validation_loss(None, val_t, class_weight, norms["val"])

    def fit(self, fit_idx: np.ndarray, val_idx: np.ndarray, progress: bool = False, label: str = "train"
            ) -> tuple[list[dict], int]:
        cfg = self.cfg
        fit_t, val_t = _targets(self.graph, fit_idx), _targets(self.graph, val_idx)
        class_weight = None
        if cfg.class_weight and self.y is not None and len(fit_t.label_idx):
            counts = torch.bincount(self.y[fit_t.label_idx], minlength=len(self.graph.label_classes)).float()
            class_weight = (counts.sum() / (len(counts) * counts.clamp(min=1))).to(self.device)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed)
        fit_all = torch.as_tensor(fit_idx, dtype=torch.long)
        norms = {"fit": self.chance_losses(fit_t), "val": self.chance_losses(val_t)}
        # Early stopping restores the epoch of the best (balanced) validation loss, but only stops
        # once NO task has improved for `patience` epochs: a summed loss can stall while one task
        # still learns (a falling cross-entropy hidden under a rising Cox term).
        best, best_epoch, best_state, history = float("inf"), 0, None, []
        task_best = {"ce": (float("inf"), 0), "cox": (float("inf"), 0)}
        if cfg.wide and cfg.wide_warm_start:
            self.warm_start_wide(fit_t, class_weight)
            vloss, vce, vcx = self._validation_loss(val_idx, val_t, class_weight, norms["val"])
            best, best_state = vloss, copy.deepcopy(self.model.state_dict())  # epoch 0: the linear fit
            task_best = {"ce": (vce, 0), "cox": (vcx, 0)}
        with make_progress(progress) as bar:
            task = bar.add_task(label, total=cfg.epochs)
            for epoch in range(1, cfg.epochs + 1):
                if cfg.batch_size:
                    (loss, ce, cx) = self._minibatch_pass(fit_idx, class_weight, opt, gen, norms["fit"])
                    (vloss, vce, vcx) = self._validation_loss(val_idx, val_t, class_weight, norms["val"])
                else:
                    (loss, ce, cx), (vloss, vce, vcx) = self._full_batch_epoch(fit_all, fit_t, val_t,
                                                                               class_weight, opt, gen, norms)
                history.append({"epoch": epoch, "train_loss": loss, "train_ce": ce, "train_cox": cx,
                                "val_loss": vloss, "val_ce": vce, "val_cox": vcx,
                                "val_ce_rel": vce / norms["val"][0], "val_cox_rel": vcx / norms["val"][1]})
                bar.update(task, advance=1, description=f"{label} (val loss {vloss:.3f})")
                for key, v in (("ce", vce), ("cox", vcx)):
                    if v < task_best[key][0] - 1e-4:
                        task_best[key] = (v, epoch)
                if vloss < best - 1e-4:
                    best, best_epoch, best_state = vloss, epoch, copy.deepcopy(self.model.state_dict())
                last_gain = max(best_epoch, *(e for _, e in task_best.values()))
                if epoch - last_gain >= cfg.patience:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        self.task_best_epochs = {k: e for k, (_, e) in task_best.items() if e}
        self.risk_source = (self.keep_better_risk(fit_t, val_t) if cfg.wide and cfg.risk_fallback
                            else "network")
        return history, best_epoch

    @torch.no_grad()
    def predict_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities (len(rows), K), risk (len(rows),)) of patient ``rows`` on the graph
        this network trained on (its held-out patients receive-only): out-of-bag predictions."""
        self.model.eval()
        _, logits, risk = self.model(self.x, self.edges, self.vocab)
        rows_t = torch.as_tensor(rows, dtype=torch.long, device=logits.device)
        return torch.softmax(logits[rows_t], -1).cpu().numpy(), risk[rows_t].cpu().numpy()


#: Inverse L2 strength of the wide classifier's warm start (scikit-learn's C, as the logreg baseline).
WARM_START_C = 0.1


def _lbfgs(params: list[torch.Tensor], objective, max_iter: int = 200) -> None:
    """Minimise ``objective()`` over ``params`` in place (full-batch L-BFGS, strong-Wolfe line search)."""
    opt = torch.optim.LBFGS(params, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)


#: A task head counts as "at chance" when, on the validation patients, the balanced accuracy is
#: within this margin of 1/K, or Harrell's C below 0.5 + this margin.
CHANCE_MARGIN = 0.05


def chance_heads(graph: ModelGraph, val_idx: np.ndarray, proba: np.ndarray, risk: np.ndarray) -> list[str]:
    """Task heads whose validation predictions are no better than chance ("diagnosis", "survival")."""
    from graphonc.model.metrics import _harrell
    from sklearn.metrics import balanced_accuracy_score

    p, out = graph.data[S.PATIENT], []
    if "y" in p and graph.label_classes:
        y = p.y.numpy()[val_idx]
        ok = y >= 0
        if ok.sum() >= 5 and len(np.unique(y[ok])) >= 2:
            k = len(np.unique(y[ok]))
            bacc = balanced_accuracy_score(y[ok], proba[val_idx][ok].argmax(1))
            if bacc <= 1.0 / k + CHANCE_MARGIN:
                out.append("diagnosis")
    if "has_survival" in p:
        ok = p.has_survival.numpy()[val_idx]
        ev = p.event.numpy()[val_idx][ok].astype(bool)
        if ev.sum() >= 3:
            c = _harrell(ev, p.time.numpy()[val_idx][ok], risk[val_idx][ok])
            if not np.isnan(c) and c <= 0.5 + CHANCE_MARGIN:
                out.append("survival")
    return out


def fit_model(run: GraphRun, train_ids: list[str], cfg: ModelConfig, progress: bool = False,
              warn_chance: bool = True) -> FitResult:
    """Train on ``train_ids`` (a share held out receive-only for early stopping).

    ``cfg.member_validation``: "own" (default): every training patient is a sender of the graph
    and inside the input statistics, and each ensemble member holds out its own validation share
    (seed + i) for early stopping, receive-only while that member trains; so the ensemble learns
    from every training patient, and its validation predictions are out-of-bag (each held-out
    patient scored by the members that did not train on it). "shared": one validation share for
    every member, left out of the graph's senders and of the input statistics.
    Every other patient of the run is in the graph receive-only, so its embedding can be read
    off afterwards without having influenced training. Inputs follow ``cfg``'s policy
    (:func:`graphonc.model.inputs.model_inputs`), fitted on the senders only. A task head still
    at chance on the validation predictions is listed in ``FitResult.at_chance`` and, with
    ``warn_chance`` (off for tuning's inner fits, which count them instead), logged as a warning.
    """
    from graphonc.model.inputs import fit_inputs, model_inputs

    seed_everything(cfg.seed)
    own = cfg.member_validation == "own"
    shared = split_validation(train_ids, cfg.val_fraction, cfg.seed)
    senders = sorted(train_ids) if own else shared[0]
    inputs = fit_inputs(run, senders, model_inputs(run, cfg))
    graph = model_graph(run, senders, min_patients=cfg.mutation_min_patients, inputs=inputs)
    device = pick_device(cfg.device)
    n, k = graph.data[S.PATIENT].num_nodes, len(graph.label_classes)
    oob_proba, oob_risk, oob_n = np.zeros((n, k)), np.zeros(n), np.zeros(n)
    nets, runs, member_risk = [], [], []
    for i in range(cfg.ensemble):
        member_cfg = cfg.model_copy(update={"seed": cfg.seed + i})
        fit_ids, val_ids = split_validation(train_ids, cfg.val_fraction, member_cfg.seed) if own else shared
        fit_idx, val_idx = graph.patient_index(fit_ids), graph.patient_index(val_ids)
        seed_everything(member_cfg.seed)
        trainer = Trainer(graph, member_cfg, device, held_out=val_idx if own else None)
        label = f"train network {i + 1}/{cfg.ensemble}" if cfg.ensemble > 1 else "train"
        runs.append((*trainer.fit(fit_idx, val_idx, progress, label), trainer.task_best_epochs))
        member_risk.append(trainer.risk_source)
        proba, risk = trainer.predict_rows(val_idx)
        oob_proba[val_idx] += proba
        oob_risk[val_idx] += risk
        oob_n[val_idx] += 1
        nets.append(trainer.model.cpu())
    history, best_epoch, task_best = runs[0]
    model = nets[0] if len(nets) == 1 else GNNEnsemble(nets)
    held = np.flatnonzero(oob_n)
    val_proba, val_risk = np.full((n, k), np.nan), np.full(n, np.nan)
    val_proba[held], val_risk[held] = oob_proba[held] / oob_n[held, None], oob_risk[held] / oob_n[held]
    at_chance = chance_heads(graph, held, val_proba, val_risk)
    val_ids = sorted(graph.ids[S.PATIENT][held])
    if at_chance and warn_chance:
        log.warning("%s: the %s head(s) stayed at chance on the %d validation patients (best epoch %d); "
                    "its predictions and embeddings carry little signal for that task — try `graphonc train "
                    "--tune`, more patients, or a smaller gene vocabulary (model.gene_min_patients)",
                    "GNN" if cfg.use_graph else "MLP", "/".join(at_chance), len(val_ids), best_epoch)
    return FitResult(model, graph, cfg, history, best_epoch, senders, val_ids, at_chance, task_best,
                     [r[1] for r in runs], member_risk, val_proba, val_risk,
                     fit_booster(graph, senders, cfg, val_proba))


def fit_booster(graph: ModelGraph, senders: list[str], cfg: ModelConfig, val_proba: np.ndarray
                ) -> LabelBooster | None:
    """The label trees of ``cfg.label_boosting`` on the labelled sender patients, with their
    weight: fixed, or ("auto") chosen on out-of-bag predictions, the network's ``val_proba`` (NaN
    rows: not held out) against the trees' own 5-fold ones (graphonc.model.boosted)."""
    p = graph.data[S.PATIENT]
    if cfg.label_boosting == 0 or "y" not in p or len(graph.label_classes) < 2:
        return None
    y, k = p.y.numpy(), len(graph.label_classes)
    rows = graph.patient_index(senders)
    rows = rows[y[rows] >= 0]
    if len(np.unique(y[rows])) < 2:
        return None
    features, n_clinical = graph_tree_features(graph.data), p.x.shape[1]
    if cfg.label_boosting != "auto":
        return LabelBooster.fit(features, y[rows], rows, k, n_clinical, cfg.seed, float(cfg.label_boosting))
    held = np.flatnonzero(~np.isnan(val_proba[:, 0]) & (y >= 0))
    if len(held) < MIN_OOB_PATIENTS:
        log.info("label trees: %d labelled out-of-bag patients, too few to weigh them; the network alone", len(held))
        return None
    oob = np.full((len(y), k), np.nan)
    oob[rows] = out_of_fold_trees(features, y[rows], rows, k, n_clinical, cfg.seed)
    final = None
    outside = held[np.isnan(oob[held, 0])]  # held out but not senders (member_validation "shared")
    if len(outside):  # the trees of every sender never saw them
        final = LabelBooster.fit(features, y[rows], rows, k, n_clinical, cfg.seed, 1.0)
        oob[outside] = final.predict_proba(features[outside])
    weight, losses = choose_weight(val_proba[held], oob[held], y[held])
    if weight == 0:  # no trees to keep; the losses still go to metrics.json
        return LabelBooster(np.zeros(0, np.int64), None, 0.0, losses)
    final = final or LabelBooster.fit(features, y[rows], rows, k, n_clinical, cfg.seed, weight)
    final.weight, final.oob_log_loss = weight, losses
    return final


@torch.no_grad()
def predict(model: PatientGNN | GNNEnsemble, graph: ModelGraph, booster: LabelBooster | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings (N, D), class probabilities (N, K), risk (N,)) for every patient of the graph;
    with ``booster`` the class probabilities are the network's blended with its trees'."""
    model.eval()
    d = graph.data
    x = {t: d[t].x for t in d.node_types if "x" in d[t]}
    edges = {e: d[e].edge_index for e in d.edge_types}
    z, logits, risk = model(x, edges, graph.vocab_dict)
    proba = torch.softmax(logits, -1).numpy()
    if booster is not None and booster.active:
        proba = booster.blend(proba, graph_tree_features(d))
    return z.numpy(), proba, risk.numpy()
