"""Nearest patients and why: the search path (ids, self-exclusion, filters) and the reasons.

Two layers:

* :func:`neighbours` — the one search path, batched: query vectors → the k most similar *other*
  patients that pass the filters (rows, cosine scores), through FAISS's ``Index.search``, its
  candidates rescored exactly and ties broken by patient id (:meth:`PatientIndex.rescored`).
  With filters, or when the k-th could tie with a candidate not yet seen, it searches more
  candidates (doubling) until k pass or the whole index has been seen, so k are returned
  whenever k exist.
* :func:`explain_pair` / :func:`similar_patients` — per neighbour, what the two patients share
  in the graph (mutations, genes with their role, pathways, treatments, radiomic phenotypes),
  their clinical similarities and differences, and what happened to the neighbour.

Nothing here is cohort-specific: the subtype is the run's ``label``, treatments are Treatment
nodes, survival is ``os_months``/``os_event`` (months; event 1 = death), the clinical columns
are the run manifest's ``patient_columns``. Those are the tables' keys; profiles and reasons
name each column by its original header (``GraphRun.column_names``), as the user knows it.
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from graphonc import layout as L
from graphonc.errors import GraphoncError, did_you_mean, unknown_patient
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.search.index import PatientIndex, load_index

#: Extra candidates every search asks FAISS for, so that a tie at the k-th place is seen whole.
TIE_MARGIN = 4
#: How far FAISS's float32 cosines may stray from the exact ones (d·ε₃₂ for d up to ~1000).
FLOAT32_NOISE = 1e-4

#: A numeric clinical value counts as "similar" when the two patients differ by at most this
#: many cohort standard deviations.
NUMERIC_SIMILAR_SD = 0.5
#: How many shared pathways a neighbour lists (most specific first); the count covers all.
MAX_PATHWAYS = 10


# ---------------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """Optional neighbour filters (all must hold).

    same_label: the neighbour's diagnosis label equals the query's (for a new patient without a
        label, its predicted label); neighbours without a label never pass.
    treated_with: Treatment node ids the neighbour must all have received.
    alive_at_months: the neighbour is known to be alive at this time: ``os_months >= N``
        (a patient censored before N months is unknown there and does not pass).
    has_outcome: the neighbour has a recorded outcome (overall survival time).
    """

    same_label: bool = False
    treated_with: tuple[str, ...] = ()
    alive_at_months: float | None = None
    has_outcome: bool = False

    @property
    def active(self) -> bool:
        return self.same_label or bool(self.treated_with) or self.alive_at_months is not None or self.has_outcome

    def describe(self) -> str:
        parts = []
        if self.same_label:
            parts.append("same diagnosis label")
        if self.treated_with:
            parts.append("treated with " + " and ".join(self.treated_with))
        if self.alive_at_months is not None:
            parts.append(f"alive at {self.alive_at_months:g} months")
        if self.has_outcome:
            parts.append("with a recorded outcome")
        return ", ".join(parts) or "none"


# ---------------------------------------------------------------------------------- facts


#: Patient columns saying a modality was profiled (not profiled is not "not altered").
ASSAY_FLAGS = ("cna_profiled", "sv_profiled")


@dataclass
class Profile:
    """What the graph says about one patient (a cohort patient or a new one)."""

    id: str
    clinical: dict
    label: str | None
    mutations: set[str]
    genes: set[str]
    treatments: list[str]
    phenotypes: dict[str, float]
    os_months: float | None
    os_event: float | None
    extra_survival: dict[str, dict] = field(default_factory=dict)
    new: bool = False
    #: gene → copy-number call ("AMP", "HOMDEL") and fusion ids, when the run has those modalities
    copy_number: dict[str, str] = field(default_factory=dict)
    fusions: list[str] = field(default_factory=list)
    #: whether copy number / structural variants were profiled (``cna_profiled``, ``sv_profiled``), where the run has them
    assays: dict[str, bool] = field(default_factory=dict)


def _none(v):
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _groups(df: pd.DataFrame, key: str, val: str) -> dict[str, list]:
    if df.empty:
        return {}
    return {k: list(v) for k, v in df.groupby(key, sort=False)[val]}


def _alterations_of(cna: pd.DataFrame, fusions: pd.DataFrame) -> tuple[dict[str, dict[str, str]], dict[str, list]]:
    """Per patient: gene → copy-number call, and the sorted fusion ids."""
    cna_of: dict[str, dict[str, str]] = {}
    for src, dst, call in zip(cna[S.SRC], cna[S.DST], cna["call"] if "call" in cna.columns else [None] * len(cna)):
        cna_of.setdefault(src, {})[dst] = call
    return cna_of, {k: sorted(v) for k, v in _groups(fusions, S.SRC, S.DST).items()}


class CohortFacts:
    """The run's tables, indexed for per-patient lookups (built once per command)."""

    def __init__(self, run: GraphRun) -> None:
        self.run = run
        cols = run.patient_columns()
        self.numeric: list[str] = list(cols.get("numeric") or [])
        self.categorical: list[str] = list(cols.get("categorical") or [])
        # shown, never model inputs: display columns, those known only after diagnosis, expression calls
        self.display: list[str] = list(dict.fromkeys(
            [*(cols.get("display") or []), *(cols.get("after_diagnosis") or []), *(cols.get("expression_derived") or [])]))
        self.extra_endpoints: list[str] = list(cols.get("extra_survival") or [])
        self.has_label = bool(cols.get("label"))
        self.has_survival = bool(cols.get("survival"))
        #: key → the column name users know (the original header); :meth:`shown`
        self.names = run.column_names()
        self.keys = run.column_keys()
        #: shown column name → unit (the config's clinical.units), for display
        self.units: dict[str, str] = {self.shown(k): u for k, u in (cols.get("units") or {}).items()}
        p = run.nodes(S.PATIENT)
        self.patients = p.set_index(S.ID, drop=False)
        # a profile reads one row: by position from each column's array (a pandas row lookup on this
        # mixed-type frame costs ~0.25 ms, 11 per query; the service answers in a few ms)
        self._row_of = {pid: i for i, pid in enumerate(self.patients.index)}
        self._columns = {c: self.patients[c].array for c in self.patients.columns}
        self.numeric_sd = {c: float(pd.to_numeric(p[c], errors="coerce").std()) for c in self.numeric if c in p}
        types = set(run.edge_types())
        nt = set(run.node_types())
        has = run.edges(S.HAS_MUTATION) if S.HAS_MUTATION in types else pd.DataFrame(columns=[S.SRC, S.DST])
        self.mut_of = {k: set(v) for k, v in _groups(has, S.SRC, S.DST).items()}
        ig = run.edges(S.IN_GENE) if S.IN_GENE in types else pd.DataFrame(columns=[S.SRC, S.DST])
        self.gene_of_mutation = dict(zip(ig[S.SRC], ig[S.DST]))
        genes = run.nodes(S.GENE) if S.GENE in nt else pd.DataFrame(columns=[S.ID])
        self.gene_role = dict(zip(genes[S.ID], genes["role"])) if "role" in genes else {}
        ip = run.edges(S.IN_PATHWAY) if S.IN_PATHWAY in types else pd.DataFrame(columns=[S.SRC, S.DST])
        self.pathways_of_gene = {k: set(v) for k, v in _groups(ip, S.SRC, S.DST).items()}
        pw = run.nodes(S.PATHWAY) if S.PATHWAY in nt else pd.DataFrame(columns=[S.ID])
        self.pathway = pw.set_index(S.ID) if not pw.empty else pd.DataFrame(columns=["name", "source", "n_genes"])
        # id → (name, source, n_genes) as plain values: explain_pair looks up every shared pathway of
        # every neighbour, and a pandas row lookup costs ~100 µs each
        self.pathway_info = {pid: tuple(_none(r.get(c)) for c in ("name", "source", "n_genes"))
                             for pid, r in zip(self.pathway.index, self.pathway.to_dict("records"))}
        # every pathway's place in the reasons' order among pathways sharing as many genes (small,
        # specific ones first, then by id), so a neighbour's top pathways need no sort of them all
        every = set(self.pathway_info).union(*self.pathways_of_gene.values())
        size = {pw: self.pathway_info.get(pw, (None, None, None))[2] for pw in every}
        self.pathway_rank = {pw: i for i, pw in enumerate(
            sorted(every, key=lambda pw: (size[pw] if size[pw] is not None else 1e9, pw)))}
        self.pathway_by_rank = sorted(self.pathway_rank, key=self.pathway_rank.get)
        # each gene's pathways as a bit mask over those ranks: the pathways two patients both hit
        # (each through any of its genes) are an AND of two ORs, counted without building sets
        self.pathway_mask_of_gene = {g: _bit_mask([self.pathway_rank[pw] for pw in pws], len(every))
                                     for g, pws in self.pathways_of_gene.items()}
        rec = run.edges(S.RECEIVED) if S.RECEIVED in types else pd.DataFrame(columns=[S.SRC, S.DST])
        self.treatments_of = {k: sorted(v) for k, v in _groups(rec, S.SRC, S.DST).items()}
        tr = run.nodes(S.TREATMENT) if S.TREATMENT in nt else pd.DataFrame(columns=[S.ID])
        self.treatment_names: list[str] = sorted(tr[S.ID])
        ph = run.edges(S.HAS_PHENOTYPE) if S.HAS_PHENOTYPE in types else pd.DataFrame(columns=[S.SRC, S.DST, "p"])
        pcol = "p" if "p" in ph.columns else None
        self.phenotypes_of: dict[str, dict[str, float]] = {}
        for src, dst, pv in zip(ph[S.SRC], ph[S.DST], ph[pcol] if pcol else [None] * len(ph)):
            self.phenotypes_of.setdefault(src, {})[dst] = _none(pv)
        self.mutation_info = (run.nodes(S.MUTATION).set_index(S.ID) if S.MUTATION in nt
                              else pd.DataFrame(columns=["gene", "variant_class"]))
        cna = run.edges(S.HAS_CNA) if S.HAS_CNA in types else pd.DataFrame(columns=[S.SRC, S.DST, "call"])
        self.cna_of, self.fusions_of = _alterations_of(cna, run.edges(S.HAS_FUSION) if S.HAS_FUSION in types
                                                       else pd.DataFrame(columns=[S.SRC, S.DST]))
        #: values derived from these facts once and reused by callers (the report's cohort curves)
        self.memo: dict = {}

    def shown(self, key: str) -> str:
        """The name a Patient column (by key) is shown under: its original header."""
        return self.names.get(key, key)

    @property
    def model_inputs(self) -> set[str]:
        """Shown names of the clinical model inputs."""
        return {self.shown(c) for c in (*self.numeric, *self.categorical)}

    # ---- profiles

    def genes_of(self, mutations: set[str], gene_hint: dict[str, str] | None = None) -> set[str]:
        out = set()
        for m in mutations:
            g = self.gene_of_mutation.get(m) or (gene_hint or {}).get(m)
            if g is not None:
                out.add(g)
        return out

    def profile(self, pid: str) -> Profile:
        """A cohort patient's profile (raises KeyError for an unknown id)."""
        i = self._row_of[pid]
        row = {c: col[i] for c, col in self._columns.items()}
        prof = self._profile(pid, row, self.mut_of.get(pid, set()), self.treatments_of.get(pid, []),
                             self.phenotypes_of.get(pid, {}))
        prof.copy_number, prof.fusions = dict(self.cna_of.get(pid, {})), list(self.fusions_of.get(pid, []))
        return prof

    def _profile(self, pid, row, muts: set[str], treatments: list[str], phenotypes: dict, new: bool = False,
                 gene_hint: dict[str, str] | None = None) -> Profile:
        clinical = {self.shown(c): _none(row.get(c)) for c in (*self.numeric, *self.categorical, *self.display)
                    if c in row}
        extra = {}
        for name in self.extra_endpoints:
            t = _none(row.get(self.keys.get(L.months(name), L.months(name))))
            e = _none(row.get(self.keys.get(L.event(name), L.event(name))))
            if t is not None:
                extra[name] = {"months": t, "event": e}
        assays = {c: bool(_none(row.get(c))) for c in ASSAY_FLAGS if c in row}
        return Profile(str(pid), clinical, _none(row.get(L.LABEL)) if L.LABEL in row else None, set(muts),
                       self.genes_of(muts, gene_hint), list(treatments), dict(phenotypes),
                       _none(row.get(L.OS_MONTHS)), _none(row.get(L.OS_EVENT)), extra, new, assays=assays)

    def new_profiles(self, patients: pd.DataFrame, edges: dict, predicted_labels: Sequence[str | None] = (),
                     mutation_genes: pd.DataFrame | None = None) -> list[Profile]:
        """Profiles of new patients from their graph tables (the shape ``embed_patients`` returns).

        A new patient without a label takes its predicted label (for the same-label filter).
        """
        has = edges.get(S.HAS_MUTATION, pd.DataFrame(columns=[S.SRC, S.DST]))
        rec = edges.get(S.RECEIVED, pd.DataFrame(columns=[S.SRC, S.DST]))
        ph = edges.get(S.HAS_PHENOTYPE, pd.DataFrame(columns=[S.SRC, S.DST]))
        hint = {}
        if mutation_genes is not None and not mutation_genes.empty:
            hint = dict(zip(mutation_genes[S.ID], mutation_genes["gene"]))
        else:  # a mutation id is "GENE:change" (graph.schema); the gene of a variant the run never saw
            hint = {m: str(m).split(":", 1)[0] for m in has[S.DST]}
        muts, trs = _groups(has, S.SRC, S.DST), _groups(rec, S.SRC, S.DST)
        cna_of, fusions_of = _alterations_of(edges.get(S.HAS_CNA, pd.DataFrame(columns=[S.SRC, S.DST, "call"])),
                                             edges.get(S.HAS_FUSION, pd.DataFrame(columns=[S.SRC, S.DST])))
        phs: dict[str, dict] = {}
        for src, dst, pv in zip(ph[S.SRC], ph[S.DST], ph["p"] if "p" in ph.columns else [None] * len(ph)):
            phs.setdefault(src, {})[dst] = _none(pv)
        out = []
        for i, (_, row) in enumerate(patients.iterrows()):
            pid = row[S.ID]
            prof = self._profile(pid, row, set(muts.get(pid, [])), sorted(trs.get(pid, [])), phs.get(pid, {}),
                                 new=True, gene_hint=hint)
            prof.copy_number, prof.fusions = dict(cna_of.get(pid, {})), list(fusions_of.get(pid, []))
            if prof.label is None and i < len(predicted_labels):
                prof.label = predicted_labels[i]
            out.append(prof)
        return out

    # ---- filters

    def check_filters(self, filters: Filters) -> None:
        """Refuse filters that cannot be applied to this run, naming the fix."""
        for t in filters.treated_with:
            if t not in self.treatment_names:
                hint = did_you_mean(t, self.treatment_names)
                if not hint:  # an abbreviation ('chemo') is too short for difflib
                    sub = [n for n in self.treatment_names if t.lower() in n.lower()]
                    hint = f" Did you mean {', '.join(repr(h) for h in sub[:3])}?" if sub else ""
                raise GraphoncError(f"unknown treatment {t!r}: the run's Treatment nodes are "
                                    f"{', '.join(self.treatment_names) or '(none)'}.{hint}")
        if filters.same_label and not self.has_label:
            raise GraphoncError("--same-label: this run has no diagnosis label (clinical.label in the config).")
        if filters.has_outcome and not self.has_survival:
            raise GraphoncError("--has-outcome: this run has no survival columns (clinical.survival in the config).")
        if filters.alive_at_months is not None:
            if not self.has_survival:
                raise GraphoncError("--alive-at: this run has no survival columns (clinical.survival in the config).")
            if not (filters.alive_at_months >= 0):
                raise GraphoncError(f"--alive-at must be a number of months >= 0, got {filters.alive_at_months}")

    def allowed(self, ids: np.ndarray, filters: Filters, query_label: str | None) -> np.ndarray:
        """Boolean mask over ``ids`` (index rows): which patients pass ``filters`` for this query."""
        ok = np.ones(len(ids), dtype=bool)
        p = self.patients.reindex(ids)
        if filters.same_label:
            ok &= p[L.LABEL].eq(query_label).fillna(False).to_numpy(bool) if query_label is not None else False
        for t in filters.treated_with:
            ok &= np.array([t in self.treatments_of.get(i, ()) for i in ids], dtype=bool)
        if filters.alive_at_months is not None:
            months = pd.to_numeric(p[L.OS_MONTHS], errors="coerce").to_numpy(float)
            ok &= np.nan_to_num(months, nan=-np.inf) >= filters.alive_at_months
        if filters.has_outcome:
            ok &= pd.to_numeric(p[L.OS_MONTHS], errors="coerce").notna().to_numpy(bool)
        return ok


# ---------------------------------------------------------------------------------- search path


@dataclass
class Hits:
    """Neighbours of m queries: rows (m, k) index rows (−1 = fewer than k exist), scores (m, k) cosines."""

    rows: np.ndarray
    scores: np.ndarray


def neighbours(index: PatientIndex, queries: np.ndarray, k: int, exclude_rows: np.ndarray | None = None,
               allowed: np.ndarray | None = None) -> Hits:
    """The k most similar index rows per query vector, best first.

    Args:
        queries: (m, d) query vectors (normalised here).
        k: neighbours per query.
        exclude_rows: (m,) the query's own index row (−1 for a query not in the index); never returned.
        allowed: (m, n) or (n,) boolean: rows a query may return (filters); None = all.
    Returns:
        :class:`Hits` with (m, k) arrays; a row with fewer than k admissible patients is padded with −1/NaN.
    """
    if k < 1:
        raise GraphoncError(f"-k must be at least 1, got {k}")
    m, n = len(queries), index.n
    excl = np.full(m, -1, np.int64) if exclude_rows is None else np.asarray(exclude_rows, np.int64)
    if allowed is not None:
        allowed = np.asarray(allowed, bool)
        allowed = np.broadcast_to(allowed, (m, n)) if allowed.ndim == 1 else allowed
    kk = k + int((excl >= 0).any())  # room for the query itself
    if allowed is not None:  # oversample by the share that passes, then double as needed
        share = max(allowed.mean(), 1.0 / n)
        kk = int(math.ceil(kk / share * 1.2)) + 8
    kk += TIE_MARGIN
    out_rows = np.full((m, k), -1, np.int64)
    out_scores = np.full((m, k), np.nan, np.float32)
    todo = np.arange(m)
    while len(todo):
        kk = min(kk, n)
        _, r = index.search(queries[todo], kk)
        s, r = index.rescored(queries[todo], r)
        keep = (r >= 0) & (r != excl[todo, None])
        if allowed is not None:
            keep &= allowed[todo[:, None], np.clip(r, 0, n - 1)]
        # compact each row's kept columns to the front, order preserved (stable sort on "not kept")
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        kept = np.take_along_axis(keep, order, 1)
        # done when k are kept and no candidate beyond the kk searched can reach the k-th: FAISS
        # ranked by float32 scores, so one that ties the k-th (a twin) may lie just past kk
        full = kept.sum(1) >= k
        kth = np.where(full, np.take_along_axis(s, order[:, -1:], 1)[:, 0], np.inf)
        last = np.where(r >= 0, s, np.inf).min(1)
        done = (full & (kth > last + FLOAT32_NOISE)) | (kk >= n)
        order, kept = order[done], kept[done]
        w = order.shape[1]
        out_rows[todo[done], :w] = np.where(kept, np.take_along_axis(r[done], order, 1), -1)
        out_scores[todo[done], :w] = np.where(kept, np.take_along_axis(s[done], order, 1), np.nan)
        todo = todo[~done]
        kk *= 2
    return Hits(out_rows, out_scores)


def neighbours_of_rows(index: PatientIndex, rows: np.ndarray, k: int, allowed: np.ndarray | None = None) -> Hits:
    """:func:`neighbours` of the indexed patients at ``rows`` (m,), queried with their stored vectors;
    a patient is never its own neighbour."""
    rows = np.asarray(rows, np.int64)
    return neighbours(index, index.vectors(rows), k, rows, allowed)


# ---------------------------------------------------------------------------------- reasons


@dataclass
class Neighbour:
    """One neighbour of a query patient, with the reasons and what happened to them."""

    rank: int
    id: str
    score: float
    label: str | None
    shared_mutations: list[str]
    shared_genes: list[dict]          # {gene, role}
    shared_pathways: list[dict]       # {id, name, source, n_genes, shared_genes}
    n_shared_pathways: int
    clinical_similar: list[dict]      # {column, query, neighbour}
    clinical_different: list[dict]
    shared_treatments: list[str]
    shared_phenotypes: list[dict]     # {phenotype, query_p, neighbour_p}
    phenotypes: dict
    treatments: list[str]
    os_months: float | None
    os_event: float | None
    status: str
    extra_survival: dict = field(default_factory=dict)
    shared_copy_number: list[dict] = field(default_factory=list)   # {gene, call, reason}
    shared_fusions: list[dict] = field(default_factory=list)       # {fusion, reason}


def survival_status(months: float | None, event: float | None) -> str:
    if months is None:
        return "unknown"
    return f"died at {months:.0f} months" if event == 1 else f"alive at last follow-up ({months:.0f} months)"


def _bit_mask(positions: list[int], n_bits: int) -> int:
    """An int with the given bits set (built through numpy: one step, not one big-int copy per bit)."""
    bits = np.zeros(max(n_bits, 1), dtype=np.uint8)
    bits[positions] = 1
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def _set_bits(mask: int):
    """Positions of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _pathway_mask(facts: CohortFacts, genes) -> int:
    mask = 0
    for g in genes:
        mask |= facts.pathway_mask_of_gene.get(g, 0)
    return mask


class QueryPathways(NamedTuple):
    """A query patient's pathways, worked out once per query and shared by its k neighbours' reasons."""

    genes_in: dict[str, set[str]]  # pathway -> the query's genes in it
    mask: int                      # the same pathways as bits over CohortFacts.pathway_rank


def _query_pathways(facts: CohortFacts, genes: set[str]) -> QueryPathways:
    out: dict[str, set[str]] = {}
    for g in genes:
        for pw in facts.pathways_of_gene.get(g, ()):
            out.setdefault(pw, set()).add(g)
    return QueryPathways(out, _pathway_mask(facts, genes))


#: How a copy-number call reads in a reason ("both carry an AR amplification").
CNA_WORDS = {"AMP": "amplification", "HOMDEL": "deep deletion"}


def shared_alterations(q: Profile, nb: Profile) -> tuple[list[dict], list[dict]]:
    """Copy-number calls (same gene, same call) and fusions both patients carry, with a reason each."""
    cn = [{"gene": g, "call": q.copy_number[g],
           "reason": f"both carry {_article(g)} {g} {CNA_WORDS.get(q.copy_number[g], str(q.copy_number[g]))}"}
          for g in sorted(set(q.copy_number) & set(nb.copy_number)) if q.copy_number[g] == nb.copy_number[g]]
    fu = [{"fusion": f, "reason": f"both carry {f}"} for f in sorted(set(q.fusions) & set(nb.fusions))]
    return cn, fu


def _article(word: str) -> str:
    """'an' before a symbol starting with a vowel ("an AR amplification"), else 'a' ("a MYC amplification")."""
    return "an" if word[:1].upper() in "AEIOU" else "a"


def explain_pair(facts: CohortFacts, q: Profile, nb: Profile, query_pathways: QueryPathways | None = None
                 ) -> dict:
    """What ``q`` and ``nb`` share (see :class:`Neighbour` for the keys).

    ``query_pathways``: ``_query_pathways(facts, q.genes)`` when the caller has it (one per query, not per
    neighbour).
    """
    shared_m = sorted(q.mutations & nb.mutations)
    shared_g = sorted(q.genes & nb.genes)
    pq = query_pathways if query_pathways is not None else _query_pathways(facts, q.genes)
    of_gene = facts.pathways_of_gene
    # the pathways both hit, each through any of its genes (bits = pathway ranks)
    both = pq.mask & _pathway_mask(facts, nb.genes)
    # a pathway's shared genes are the genes both patients carry that lie in it
    common = q.genes & nb.genes
    # most informative first: hit through more of the same genes, then small (specific) pathways;
    # only the rows kept are spelt out (hundreds of pathways are shared through one common gene).
    # Pathways hit through different genes of each patient come after all of those, in rank order
    # (= bit order).
    through_common = _pathway_mask(facts, common)
    if len(common) == 1:  # the usual case: every pathway of that gene is shared through one gene
        top = [facts.pathway_by_rank[b] for b in itertools.islice(_set_bits(through_common), MAX_PATHWAYS)]
    else:
        n_shared: dict[str, int] = {}
        for g in common:
            for pw in of_gene.get(g, ()):
                n_shared[pw] = n_shared.get(pw, 0) + 1
        rank = facts.pathway_rank
        top = heapq.nsmallest(MAX_PATHWAYS, n_shared, key=lambda pw: (-n_shared[pw], rank[pw]))
    top += [facts.pathway_by_rank[b]
            for b in itertools.islice(_set_bits(both & ~through_common), MAX_PATHWAYS - len(top))]
    rows = []
    for pw in top:
        name, source, n_genes = facts.pathway_info.get(pw, (None, None, None))
        rows.append({"id": pw, "name": name, "source": source, "n_genes": n_genes,
                     "shared_genes": sorted(g for g in common if pw in of_gene.get(g, ())),
                     "query_genes": sorted(pq.genes_in[pw]), "neighbour_genes": sorted(g for g in nb.genes
                                                                              if pw in of_gene.get(g, ()))})
    sim, diff = [], []
    for c in (*facts.numeric, *facts.categorical):
        a, b = q.clinical.get(facts.shown(c)), nb.clinical.get(facts.shown(c))
        if a is None or b is None:
            continue
        item = {"column": facts.shown(c), "query": a, "neighbour": b}
        if c in facts.numeric:
            sd = facts.numeric_sd.get(c) or 0.0
            close = abs(float(a) - float(b)) <= NUMERIC_SIMILAR_SD * sd if sd > 0 else float(a) == float(b)
        else:
            close = a == b
        (sim if close else diff).append(item)
    ph = [{"phenotype": k, "query_p": q.phenotypes[k], "neighbour_p": nb.phenotypes[k]}
          for k in sorted(set(q.phenotypes) & set(nb.phenotypes))]
    cn, fu = shared_alterations(q, nb)
    return {"shared_mutations": shared_m,
            "shared_genes": [{"gene": g, "role": _none(facts.gene_role.get(g))} for g in shared_g],
            "shared_pathways": rows, "n_shared_pathways": both.bit_count(),
            "clinical_similar": sim, "clinical_different": diff,
            "shared_treatments": sorted(set(q.treatments) & set(nb.treatments)), "shared_phenotypes": ph,
            "shared_copy_number": cn, "shared_fusions": fu}


@dataclass
class SimilarResult:
    """The answer for one query patient."""

    query: Profile
    neighbours: list[Neighbour]
    k: int
    filters: Filters
    index_kind: str
    prediction: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        q = asdict(self.query)
        q["mutations"], q["genes"] = sorted(self.query.mutations), sorted(self.query.genes)
        q["fusions"] = sorted(self.query.fusions)
        return {"query": q, "k": self.k, "filters": asdict(self.filters), "index": self.index_kind,
                "prediction": self.prediction, "neighbours": [_fields(n) for n in self.neighbours]}

    def table(self) -> pd.DataFrame:
        """One row per neighbour with the reasons summarised as text."""
        rows = []
        for n in self.neighbours:
            rows.append({"rank": n.rank, "id": n.id, "score": round(n.score, 4), "label": n.label,
                         "shared_mutations": ", ".join(n.shared_mutations),
                         "shared_genes": ", ".join(f"{g['gene']} ({g['role']})" for g in n.shared_genes),
                         "shared_pathways": n.n_shared_pathways,
                         "top_pathway": n.shared_pathways[0]["name"] if n.shared_pathways else "",
                         "shared_alterations": "; ".join(r["reason"] for r in n.shared_copy_number + n.shared_fusions),
                         "clinical_same": ", ".join(c["column"] for c in n.clinical_similar),
                         "clinical_different": ", ".join(f"{c['column']} {c['neighbour']}" for c in n.clinical_different),
                         "treatments": ", ".join(n.treatments), L.OS_MONTHS: n.os_months, L.OS_EVENT: n.os_event,
                         "status": n.status})
        return pd.DataFrame(rows)


def _fields(obj) -> dict:
    """A dataclass as a dict of its fields, values shared: ``asdict``'s deep copy of every reason
    list took a third of a cohort query's time in the service."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _neighbour(facts: CohortFacts, q: Profile, pid: str, rank: int, score: float,
               query_pathways: QueryPathways | None = None) -> Neighbour:
    nb = facts.profile(pid)
    why = explain_pair(facts, q, nb, query_pathways)
    return Neighbour(rank=rank, id=pid, score=float(score), label=nb.label, phenotypes=nb.phenotypes,
                     treatments=nb.treatments, os_months=nb.os_months, os_event=nb.os_event,
                     status=survival_status(nb.os_months, nb.os_event), extra_survival=nb.extra_survival, **why)


def read_predictions(run: GraphRun, model_dir: Path | None) -> pd.DataFrame | None:
    """``<model_dir>/predictions.parquet`` indexed by patient id (None when the run has none)."""
    path = run.layout.model_or(model_dir or None) / L.PREDICTIONS
    return pd.read_parquet(path).set_index(S.ID) if path.exists() else None


def _prediction_dict(row: pd.Series | None) -> dict:
    if row is None:
        return {}
    out = {"risk": _none(row.get("risk")), "predicted_label": _none(row.get("predicted_label"))}
    out["probabilities"] = {c[2:]: float(row[c]) for c in row.index if c.startswith("p_")}
    return out


def similar_patients(run_dir: Path, patient_ids: Sequence[str], k: int = 10, filters: Filters = Filters(),
                     index: PatientIndex | None = None, facts: CohortFacts | None = None,
                     device: str = "auto", predictions: pd.DataFrame | None = None) -> list[SimilarResult]:
    """The k nearest other patients of each cohort patient in ``patient_ids``, with reasons.

    Reloads ``<run>/index`` (see :func:`graphonc.search.index.load_index`), the cohort facts and
    the model's predictions unless given (the service keeps them in memory).
    """
    if k < 1:
        raise GraphoncError(f"-k must be at least 1, got {k}")
    run = GraphRun.open(run_dir)
    index = index or load_index(run.root, device)
    facts = facts or CohortFacts(run)
    facts.check_filters(filters)
    pos = index.position(patient_ids)
    for pid, p in zip(patient_ids, pos):
        if p < 0:
            raise unknown_patient(pid, index.ids, f"the index of {run.root}")
    profiles = [facts.profile(pid) for pid in patient_ids]
    preds = predictions if predictions is not None else \
        read_predictions(run, run.root / index.meta.get("model_dir", "model"))
    return _results(index, facts, profiles, None, pos, k, filters,
                    [_prediction_dict(preds.loc[p] if preds is not None and p in preds.index else None)
                     for p in patient_ids])


def _results(index, facts, profiles, q, pos, k, filters, preds) -> list[SimilarResult]:
    allowed = None
    if filters.active:
        allowed = np.vstack([facts.allowed(index.ids, filters, p.label) for p in profiles])
    # cohort patients (q None) are queried with their stored vectors, new patients with theirs
    hits = neighbours_of_rows(index, pos, k, allowed) if q is None else neighbours(index, q, k, pos, allowed)
    out = []
    for i, prof in enumerate(profiles):
        pq = _query_pathways(facts, prof.genes)
        nbs = [_neighbour(facts, prof, pid, rank + 1, s, pq)
               for rank, (pid, s) in enumerate(zip(index.ids_at(hits.rows[i]), hits.scores[i])) if pid is not None]
        out.append(SimilarResult(prof, nbs, k, filters, index.kind, preds[i]))
    return out


def similar_new_patients(run_dir: Path, source: Path, k: int = 10, filters: Filters = Filters(),
                         mutations: Path | None = None, model_dir: Path | None = None,
                         device: str = "auto") -> list[SimilarResult]:
    """Embed new patients (build-graph input formats) inductively, then search like :func:`similar_patients`."""
    from graphonc.model.embed import embed_patients  # the model stage; heavy imports only when needed

    if k < 1:
        raise GraphoncError(f"-k must be at least 1, got {k}")
    run = GraphRun.open(run_dir)
    index = load_index(run.root, device)
    facts = CohortFacts(run)
    facts.check_filters(filters)
    emb = embed_patients(run.root, Path(source), model_dir=model_dir, mutations=mutations)
    return similar_embedded(index, facts, emb, k, filters)


def similar_embedded(index: PatientIndex, facts: CohortFacts, emb, k: int, filters: Filters) -> list[SimilarResult]:
    """Neighbours with reasons of new patients already embedded (an ``EmbeddedPatients``)."""
    if emb.embeddings.shape[1] != index.dim:
        raise GraphoncError(f"the model embeds in {emb.embeddings.shape[1]} dimensions but the index holds "
                            f"{index.dim}. Fix: rebuild the index (`graphonc index --run {facts.run.root}`).")
    pred = emb.predictions().set_index(S.ID)
    labels = [_none(pred.loc[i, "predicted_label"]) if "predicted_label" in pred.columns else None for i in emb.ids]
    profiles = facts.new_profiles(emb.patients, emb.edges, labels, emb.mutation_genes)
    return _results(index, facts, profiles, emb.embeddings, np.full(len(profiles), -1), k, filters,
                    [_prediction_dict(pred.iloc[i]) for i in range(len(emb.ids))])


def parse_filters(same_label: bool, treated_with: Sequence[str] | None, alive_at: float | None,
                  has_outcome: bool = False) -> Filters:
    return Filters(bool(same_label), tuple(treated_with or ()), alive_at, bool(has_outcome))


__all__ = ["CohortFacts", "Filters", "Hits", "Neighbour", "Profile", "SimilarResult", "explain_pair",
           "neighbours", "neighbours_of_rows", "read_predictions", "similar_embedded", "similar_new_patients",
           "similar_patients"]
