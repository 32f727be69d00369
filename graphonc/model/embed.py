"""Embedding patients the model has never seen, without retraining (inductive).

New patients come in the build-graph input formats (a cBioPortal study folder, or a
clinical table plus an optional long mutation table). They are read with the run's own
config (same clinical typing, mutation filters, gene symbol harmonisation, treatments),
encoded with the model's fitted feature encoder, and attached to the trained model's graph
*receive-only*, exactly like the test patients of an evaluation fold: they take messages
from the mutations, genes, treatments and panels they link to and send none, so nothing
else in the graph changes and each new patient's embedding does not depend on the others.

Mutations, genes, treatments or panels the run has never seen cannot be attached (there is
no node for them); they are counted and reported, not silently dropped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphonc import layout as L
from graphonc.config import CBioPortalInput, GraphConfig, TableInput, load_config, parse_config
from graphonc.errors import GraphoncError, InputError
from graphonc.graph import lineage
from graphonc.graph import schema as S
from graphonc.graph.build import add_treatment_columns, read_cohort, symbol_map, treatment_tables
from graphonc.graph.clinical import patient_table
from graphonc.graph.hetero import node_features, split_edges
from graphonc.graph.mutations import add_assay_columns, filter_mutations, mutation_tables, panel_tables
from graphonc.graph.run import GraphRun, atomic_dir, write_parquet
from graphonc.model.boosted import GENE_KINDS, INTO_FUSION, INTO_FUSION_CARRIER, tree_features
from graphonc.model.data import MUTATED_IN, reverse
from graphonc.model.gnn import combine, members
from graphonc.model.io import LoadedModel, load_model

log = logging.getLogger("graphonc")


@dataclass
class NewPatients:
    """New patients as graph tables (same columns as a run's tables)."""

    patients: pd.DataFrame                       # Patient node table
    edges: dict[S.EdgeType, pd.DataFrame]        # Patient-sourced edges (src = patient id)
    mutation_genes: pd.DataFrame                 # mutation id → gene, for the MUTATED_IN shortcut
    source: str
    #: Fusion nodes the run has never seen (columns id, gene1, gene2, sv_class, intragenic): attached
    #: receive-only like the patients, through ``edges[S.FUSION_PARTNER]`` (src = the fusion id) from
    #: their partner genes, the way the builder links a fusion node (graph/fusions.py)
    fusions: pd.DataFrame | None = None

    def new_nodes(self) -> dict[str, pd.Index]:
        """Ids of the nodes these tables add to the model graph, by node type (Patient; Fusion when any)."""
        out = {S.PATIENT: pd.Index(self.patients[S.ID])}
        if self.fusions is not None and len(self.fusions):
            out[S.FUSION] = pd.Index(self.fusions[S.ID])
        return out


@dataclass
class EmbeddedPatients:
    """Embeddings and predictions of new patients.

    Attributes:
        ids: patient ids as given, length n.
        embeddings: (n, D) float32.
        proba: (n, K) class probabilities (K = 0 without a diagnosis label).
        risk: (n,) log partial hazard (higher = worse).
        classes: the K diagnosis classes.
        patients: the new patients' Patient table (clinical values as typed by the config).
        edges: the new patients' Patient-sourced edge tables (src = patient id).
        mutation_genes: gene of each of their mutations (columns id, gene).
        unmatched: per patient, what could not be attached (unknown mutations, genes, ...).
    """

    ids: list[str]
    embeddings: np.ndarray
    proba: np.ndarray
    risk: np.ndarray
    classes: list[str]
    patients: pd.DataFrame
    edges: dict[S.EdgeType, pd.DataFrame] = field(default_factory=dict)
    mutation_genes: pd.DataFrame = field(default_factory=pd.DataFrame)
    unmatched: pd.DataFrame = field(default_factory=pd.DataFrame)

    def predictions(self) -> pd.DataFrame:
        """Same columns as ``<run>/model/predictions.parquet`` (split = "new")."""
        df = pd.DataFrame({S.ID: self.ids, "split": "new", "risk": self.risk.astype("float64")})
        for i, c in enumerate(self.classes):
            df[f"p_{c}"] = self.proba[:, i].astype("float64")
        if self.classes:
            df["predicted_label"] = np.asarray(self.classes, dtype=object)[self.proba.argmax(1)]
        return df


def run_config(run: GraphRun, config_path: Path | None = None) -> GraphConfig:
    """The config a run was built from (its verbatim copy, resolved where the original lived)."""
    if config_path is not None:
        return load_config(config_path)
    original = run.manifest.get("config_path")
    copy = run.layout.config
    if original is None or not copy.exists():
        raise GraphoncError(f"{run.root}: the run does not record where its config lives. "
                            "Fix: pass --config with the config it was built from.")
    return parse_config(copy.read_text(encoding="utf-8"), Path(original))


def new_input(cfg: GraphConfig, source: Path, mutations: Path | None = None):
    """The run's input section pointed at ``source`` (a study folder or a clinical table)."""
    source = Path(source)
    if not source.exists():
        raise GraphoncError(f"{source}: no such file or folder. Fix: give a cBioPortal study folder or a "
                            "clinical table (with --mutations for its mutation table).")
    if source.is_dir():
        if mutations is not None:
            raise GraphoncError("--mutations goes with a clinical table, not a study folder "
                                "(the folder's own data_mutations*.txt is used).")
        if isinstance(cfg.input, CBioPortalInput):
            # copy number / SV of new patients are not attached yet: they are encoded as not profiled
            return cfg.input.model_copy(update={"study_dir": source, "cna": None, "sv": None})
        return CBioPortalInput(study_dir=source)
    pid = cfg.input.patient_id_column if isinstance(cfg.input, TableInput) else "patient_id"
    return TableInput(clinical=source, mutations=mutations, patient_id_column=pid)


def _columns(raw) -> set[str]:
    """Clinical columns of the patient and (if any) sample tables."""
    return set(raw.patients.df.columns) | (set(raw.sample_table.df.columns) if raw.sample_table is not None else set())


def _check_columns(raw, needed: dict[str, str]) -> None:
    """Refuse input that lacks columns the model needs, naming all of them at once."""
    have = _columns(raw)
    missing = {c: why for c, why in needed.items() if c not in have}
    if missing:
        listing = ", ".join(f"{c} ({why})" for c, why in missing.items())
        raise InputError(f"the new patients lack {len(missing)} column(s) the model needs: {listing}.",
                         file=raw.patients.path, line=1,
                         hint="add the columns (empty cells are allowed and count as missing values).")


def read_new_patients(cfg: GraphConfig, source: Path, mutations: Path | None, feature_columns: list[str],
                      imaging_columns: list[str] = (), column_keys: dict[str, str] | None = None,
                      symbols=None) -> NewPatients:
    """Read new patients with the run's config into graph tables (no pathways: genes carry those).

    Only the model's input columns are required. Treatments are given after diagnosis: a
    treatment column the input lacks means "not known", and the patient gets no edge to it.
    ``imaging_columns`` (the model's radiomic features) are optional: new patients come
    without imaging here and are encoded as such (``radiomics_available = 0``).
    ``column_keys``: the run's Patient ``{original column name: key}`` (:meth:`GraphRun.column_keys`);
    ``feature_columns`` and the returned Patient table use the keys, the input file the originals.
    ``symbols``: the run's gene symbol map when the caller keeps one loaded (else read here).
    """
    keys = column_keys or {}
    original = {k: c for c, k in keys.items()}
    inp = new_input(cfg, source, mutations)
    cfg = cfg.model_copy(update={"input": inp})
    raw = read_cohort(cfg)
    _check_columns(raw, {original.get(c, c): "model feature" for c in feature_columns})
    have = _columns(raw)
    cfg = cfg.model_copy(update={"treatments": [t for t in cfg.treatments if t.column in have]})
    # outcomes and display columns are optional for new patients: keep the ones given
    spec = cfg.clinical.model_copy(deep=True)
    for key in ("display", "after_diagnosis", "expression_derived"):
        setattr(spec, key, [c for c in getattr(spec, key) if c in have])
    if spec.label is not None and spec.label.column not in have:
        spec.label = None
    if spec.survival is not None and not {spec.survival.time, spec.survival.event} <= have:
        spec.survival = None
    spec.extra_survival = {k: v for k, v in spec.extra_survival.items() if {v.time, v.event} <= have}
    patients = patient_table(raw, spec, cfg.cohort).rename(columns=keys)
    symbols = symbols or symbol_map(cfg)
    harmonised, _ = symbols.harmonise_series(raw.mutations["gene"])
    all_mut = raw.mutations.assign(gene=harmonised)
    mut_nodes, has_mut, _ = mutation_tables(filter_mutations(all_mut, cfg))
    _, seq, _ = panel_tables(raw, all_mut, symbols, cfg)
    _, received = treatment_tables(raw, cfg)
    if cfg.treatments and not cfg.model.at_diagnosis:  # treatment status is a model input then
        patients = add_treatment_columns(patients.set_index("id", drop=False), raw, cfg).reset_index(drop=True)
    for c in imaging_columns:
        patients[c] = np.nan
    add_assay_columns(patients, seq, has_mut)
    edges = {S.HAS_MUTATION: has_mut, S.RECEIVED: received, S.SEQUENCED_WITH: seq}
    return NewPatients(patients, edges, mut_nodes[[S.ID, "gene"]], str(source))


def _rows(lm: LoadedModel, new_nodes: dict[str, pd.Index], node_type: str, ids: pd.Series) -> np.ndarray:
    """Rows of ``ids`` in the model graph with the new nodes appended after its own (-1: no such node)."""
    g = lm.graph
    old = g.ids[node_type] if node_type in g.ids else pd.Index([])
    rows = old.get_indexer(ids)
    if node_type in new_nodes and node_type != S.PATIENT:
        added = new_nodes[node_type].get_indexer(ids)
        rows = np.where((rows < 0) & (added >= 0), len(old) + added, rows)
    return rows


def links(lm: LoadedModel, new: NewPatients) -> tuple[dict, pd.DataFrame]:
    """The new nodes' links into the model graph, as the reverse edges they receive on.

    Edge tables with a subtype column become the model's edge types (``HAS_CNA`` →
    ``HAS_CNA_AMP`` / ``HAS_CNA_HOMDEL``, :func:`graphonc.graph.hetero.split_edges`). A new
    Fusion node (:attr:`NewPatients.fusions`) sits after the run's own Fusion nodes.

    Returns ({reverse edge type: (sender rows in the model graph (E,), positions of the
    receiving new nodes among ``new.new_nodes()[receiver type]`` (E,))}, per new patient the
    count of links to nodes the run has never seen, by node type).
    """
    g = lm.graph
    new_nodes = new.new_nodes()
    row = new_nodes[S.PATIENT]
    unmatched = pd.DataFrame(0, index=row, columns=[])
    pairs = dict(new.edges)
    if S.HAS_MUTATION in pairs:  # the patient→gene shortcut, through each mutation's gene
        gene_of = new.mutation_genes.set_index(S.ID)["gene"]
        has = pairs[S.HAS_MUTATION]
        pairs[MUTATED_IN] = pd.DataFrame({S.SRC: has[S.SRC], S.DST: gene_of.reindex(has[S.DST]).to_numpy()}) \
            .dropna().drop_duplicates()
        if g.genes is not None:  # the model's gene vocabulary (fitted on its training patients)
            keep = set(g.genes)
            pairs[S.HAS_MUTATION] = has[gene_of.reindex(has[S.DST]).isin(keep).to_numpy()]
            pairs[MUTATED_IN] = pairs[MUTATED_IN][pairs[MUTATED_IN][S.DST].isin(keep)]
    known_types = {tuple(e) for e in lm.graph.data.edge_types}
    out = {}
    for e, df in (pair for edge, table in pairs.items() for pair in split_edges(edge, table)):
        r = reverse(e)
        if r not in known_types or df.empty:
            continue
        di = _rows(lm, new_nodes, e[2], df[S.DST])
        known = di >= 0
        if (~known).any() and e[0] == S.PATIENT:
            col = f"unknown_{e[2].lower()}"
            n = df.loc[~known].groupby(S.SRC).size().reindex(row).fillna(0).astype(int)
            unmatched[col] = n + (unmatched[col] if col in unmatched else 0)
        out[r] = (di[known].astype(np.int64), new_nodes[e[0]].get_indexer(df[S.SRC])[known].astype(np.int64))
    return out, unmatched


def attach(lm: LoadedModel, new: NewPatients) -> tuple[dict, dict, np.ndarray, pd.DataFrame]:
    """The model graph's tensors with the new patients appended receive-only.

    Returns (x_dict, edge_index_dict, row index of each new patient, unmatched counts).
    """
    d = lm.graph.data
    n_old = {t: d[t].num_nodes for t in d.node_types}
    x = {t: d[t].x for t in d.node_types if "x" in d[t]}
    x[S.PATIENT] = torch.cat([x[S.PATIENT], torch.from_numpy(lm.graph.encoder.transform(new.patients))])
    if S.FUSION in new.new_nodes():
        x[S.FUSION] = torch.cat([x[S.FUSION], torch.from_numpy(node_features(S.FUSION, new.fusions))])
    edges = {e: d[e].edge_index for e in d.edge_types}
    linked, unmatched = links(lm, new)
    for r, (nodes, receivers) in linked.items():
        add = torch.from_numpy(np.vstack([nodes, n_old[r[2]] + receivers]))
        edges[r] = torch.cat([edges[r], add], dim=1)
    n = n_old[S.PATIENT]
    return x, edges, np.arange(n, n + len(new.patients)), unmatched


class FrozenGraph:
    """A trained model with every other node's state precomputed, for embedding new patients fast.

    A new patient is receive-only (module doc): it changes no other node's state, so the
    states of the mutations, genes, treatments, ... at every layer are those of the trained
    graph and can be computed once. Embedding m new patients is then m small message-passing
    steps over their own links, instead of a forward pass over the whole graph; the result
    equals :func:`embed_patients` (``tests/test_serve.py`` checks it).

    Attributes:
        lm: the loaded model.
        states: ``states[l][t]`` (N_t, H), the input state of layer l of each non-patient type t
            (l = 0 .. layers - 1).
        into_patient: the model's edge types that end at Patient (the ones new patients receive on).
        into_fusion: those that end at Fusion (a fusion new to the run receives on them).
    """

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        d, model = lm.graph.data, lm.model
        model.eval()
        x = {t: d[t].x for t in d.node_types if "x" in d[t]}
        edges = {e: d[e].edge_index for e in d.edge_types if tuple(e) in set(model.edge_types)}
        self.into_patient = [e for e in model.edge_types if e[2] == S.PATIENT]
        self.into_fusion = [e for e in model.edge_types if e[2] == S.FUSION]
        #: states[m][l][t]: member m's input state of layer l for each non-patient type t
        self.states: list[list[dict[str, torch.Tensor]]] = []
        with torch.no_grad():
            for net in members(model):
                per_layer = []
                h = net.input_states(x, lm.graph.vocab_dict)
                for i in range(len(net.convs)):
                    per_layer.append({t: v for t, v in h.items() if t != S.PATIENT})
                    h = net.layer(i, h, edges)
                self.states.append(per_layer)

    def embed(self, new: NewPatients) -> EmbeddedPatients:
        """Embeddings and predictions of ``new`` (see :class:`EmbeddedPatients`)."""
        lm = self.lm
        linked, unmatched = links(lm, new)
        m = len(new.patients)
        # new fusions take messages from their partner genes; their rows follow the run's own fusions
        fusions = S.FUSION in new.new_nodes() and bool(self.into_fusion)
        n_f = lm.graph.data[S.FUSION].num_nodes if fusions else 0
        edges = {}
        for e in self.into_patient + (self.into_fusion if fusions else []):
            if e not in linked:
                edges[e] = torch.empty((2, 0), dtype=torch.long)  # still run: its root term counts
                continue
            senders, receivers = linked[e]
            edges[e] = torch.from_numpy(np.vstack([senders, receivers + (n_f if e[2] == S.FUSION else 0)]))
        x = {S.PATIENT: torch.from_numpy(lm.graph.encoder.transform(new.patients))}
        if fusions:
            x[S.FUSION] = torch.from_numpy(node_features(S.FUSION, new.fusions))
        outputs = []
        with torch.no_grad():
            for net, states in zip(members(lm.model), self.states):
                h0 = net.input_states(x, {})
                hp, hf = h0[S.PATIENT], h0.get(S.FUSION)
                for i, cached in enumerate(states):
                    h = {**cached, S.PATIENT: hp}
                    if fusions:
                        h[S.FUSION] = torch.cat([cached[S.FUSION], hf])
                    out = net.layer(i, h, edges)
                    hp = out[S.PATIENT]
                    if fusions:
                        hf = out[S.FUSION][n_f:]
                outputs.append(net.heads(hp, x[S.PATIENT]))
        z, logits, risk = combine(outputs)
        features = None
        if lm.booster is not None and lm.booster.active:  # the label trees read the same links, as edges into rows 0..m-1
            d = lm.graph.data
            own = {e: np.vstack(linked[e]) for e in (*GENE_KINDS, INTO_FUSION_CARRIER) if e in linked}
            old_f = d[S.FUSION].num_nodes if S.FUSION in d.node_types else 0
            partners = [d[INTO_FUSION].edge_index.numpy()] if INTO_FUSION in d.edge_types else []
            if INTO_FUSION in linked:  # a new fusion's partners: (gene row, its row after the run's fusions)
                genes, pos = linked[INTO_FUSION]
                partners.append(np.vstack([genes, old_f + pos]))
            if partners:
                own[INTO_FUSION] = np.hstack(partners)
            features = tree_features(x[S.PATIENT].numpy(), own, d[S.GENE].num_nodes,
                                     old_f + len(new.new_nodes().get(S.FUSION, [])))
        return _embedded(lm, new, z, logits, risk, unmatched, m, features)


def _embedded(lm: LoadedModel, new: NewPatients, z, logits, risk, unmatched: pd.DataFrame, m: int,
              features=None) -> EmbeddedPatients:
    """:class:`EmbeddedPatients` from the model outputs of the new patients (the last ``m`` rows
    given) and, for the label trees (``lm.booster``), their :func:`~graphonc.model.boosted.tree_features`."""
    z, proba, risk = z[-m:].numpy(), torch.softmax(logits[-m:], -1).numpy(), risk[-m:].numpy()
    if lm.booster is not None and features is not None and lm.graph.label_classes:
        proba = lm.booster.blend(proba, features)
    if not lm.graph.label_classes:
        proba = proba[:, :0]
    if len(unmatched.columns):
        log.warning("%d new patient(s) link to mutations/genes/treatments the run has never seen; "
                    "those links are left out (see `unmatched`)", int((unmatched.sum(axis=1) > 0).sum()))
    return EmbeddedPatients(new.patients[S.ID].tolist(), z.astype(np.float32), proba, risk,
                            list(lm.graph.label_classes), new.patients, new.edges, new.mutation_genes,
                            unmatched.reset_index(names=S.ID))


def embed_patients(run_dir: Path, source: Path, model_dir: Path | None = None, mutations: Path | None = None,
                   config_path: Path | None = None) -> EmbeddedPatients:
    """Embed and score patients never seen (see module doc).

    Args:
        run_dir: the run the model was trained on.
        source: a cBioPortal study folder or a clinical table of the new patients.
        model_dir: the trained model (default ``<run>/model``).
        mutations: long mutation table that goes with a clinical table.
        config_path: the run's config, when the run does not record it.
    """
    run = GraphRun.open(run_dir)
    lm = load_model(run.layout.model_or(model_dir), run)
    enc = lm.graph.encoder
    new = read_new_patients(run_config(run, config_path), Path(source), mutations, enc.numeric + enc.categorical,
                            enc.radiomics, run.column_keys())
    if new.patients.empty:
        raise InputError("no patients in the input.", file=Path(source), hint="check the clinical file has rows.")
    x, edges, rows, unmatched = attach(lm, new)
    with torch.no_grad():
        z, logits, risk = lm.model(x, edges, lm.graph.vocab_dict)
    features = None
    if lm.booster is not None and lm.booster.active:
        features = tree_features(x[S.PATIENT].numpy(), edges, lm.graph.data[S.GENE].num_nodes,
                                 x[S.FUSION].shape[0] if S.FUSION in x else 0)[rows]
    return _embedded(lm, new, z[rows], logits[rows], risk[rows], unmatched, len(rows), features)


def write_embedded(emb: EmbeddedPatients, out: Path, run_dir: Path | None = None) -> None:
    """``out/``: embeddings.parquet, predictions.parquet (the model/ formats), unmatched.parquet and
    lineage.json (the run's graph). ``out`` must be new, empty or an earlier ``embed`` output."""
    consumed = lineage.fingerprint(run_dir) if run_dir is not None else {}
    with atomic_dir(Path(out), "embed") as tmp:
        write_parquet(pd.DataFrame({S.ID: emb.ids, "split": "new", "embedding": list(emb.embeddings)}),
                      tmp / L.EMBEDDINGS)
        write_parquet(emb.predictions(), tmp / L.PREDICTIONS)
        write_parquet(emb.unmatched, tmp / "unmatched.parquet")
        lineage.record(tmp, "embed", consumed, run_root=run_dir, rerun="graphonc embed --run {run} ...")
