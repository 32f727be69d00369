"""The run's graph as a networkx ``MultiDiGraph``, for GraphML / GEXF (Cytoscape, Gephi).

One node per row of every node table, one edge per row of every edge table::

    node key   "<Label>:<id>"           e.g. "Gene:PIK3CA", "Mutation:TP53:p.R175H" (XML-name-safe, see below)
    node data  node_type = <Label>, label = <id> (what Gephi and Cytoscape show), + the table's properties
    edge key   "e<n>"                    (unique, so GraphML edge ids are unique)
    edge data  label = <TYPE> (HAS_MUTATION, ...), + the table's properties (vaf, score, rank, ...)

Values: numbers stay numbers, booleans booleans, lists become JSON text, missing values
(NaN, NA, None, "") are omitted rather than written as text.

XML cannot hold every string, and Cytoscape/Gephi expect ids and attribute names to be XML
names. Nothing is dropped; what does not fit is mapped, and every mapping is recorded
(:func:`mapping_of`, kept as the GraphML graph attribute ``graphonc_mapping`` and in the
``<file>.mapping.json`` sidecar; :func:`restore` undoes it):

* ids: every character outside ``[A-Za-z0-9_.:-]`` is written as ``_xHHHH_`` (its code
  point, ``_UHHHHHHHH_`` above U+FFFF), and ``_`` before ``x``/``U`` as ``_x005F_`` — the
  XmlConvert.EncodeName convention, so the encoding is reversible on its own;
* property names: the same, plus ``:`` and a first character that is not a letter or ``_``;
  names the writers reserve (``label``, ``node_type``, GEXF's ``id``, ``start``, ...) get a
  trailing ``_`` (Patient's diagnosis ``label`` becomes ``label_``);
* text values with characters XML 1.0 cannot carry (control characters, lone surrogates,
  ``\\r`` which XML parsers turn into ``\\n``) have them replaced by U+FFFD; the exact text is
  kept in the mapping's ``values``.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from pandas.api import types as pdt

from graphonc.errors import GraphoncError, did_you_mean, unknown_patient
from graphonc.graph import schema as S

WRITERS = ("graphml", "gexf")
SIMILAR_TO = "SIMILAR_TO"
#: Node/edge data keys graphonc sets itself or that networkx's GEXF writer takes for itself.
RESERVED_NODE = frozenset({"label", "node_type", "id", "pid", "start", "end", "viz", "parents", "spells", "slices"})
RESERVED_EDGE = frozenset({"label", "id", "weight", "type", "start", "end", "key", "networkx_key", "viz", "spells",
                           "slices"})
MAPPING_ATTR = "graphonc_mapping"

_ID_OK = re.compile(r"[A-Za-z0-9_.:-]")
_NAME_OK = re.compile(r"[A-Za-z0-9_.-]")
_ESCAPE = re.compile(r"_x([0-9A-F]{4})_|_U([0-9A-F]{8})_")
#: Characters XML 1.0 cannot carry, plus \r (parsers normalise it to \n).
_XML_UNSAFE = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape_char(ch: str) -> str:
    cp = ord(ch)
    return f"_x{cp:04X}_" if cp <= 0xFFFF else f"_U{cp:08X}_"


def _encode(text: str, ok: re.Pattern, first_letter: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        escape = not ok.fullmatch(ch) or (ch == "_" and text[i + 1:i + 2] in ("x", "U"))
        if i == 0 and first_letter and not (ch.isascii() and (ch.isalpha() or ch == "_")):
            escape = True
        out.append(_escape_char(ch) if escape else ch)
    return "".join(out)


def encode_id(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_.:-]`` as ``_xHHHH_`` (reversible)."""
    return _encode(text, _ID_OK, first_letter=False)


def decode(text: str) -> str:
    """Undo :func:`encode_id` / the escaping part of :func:`xml_names`."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)


def node_key(label: str, node_id: str) -> str:
    """The networkx node (and XML id) of node ``node_id`` of type ``label``: ``"<label>:<encoded id>"``."""
    return f"{label}:{encode_id(str(node_id))}"


def xml_names(names: Iterable[str], reserved: frozenset[str]) -> dict[str, str]:
    """Original property name → an XML name (NCName) not in ``reserved``; distinct names stay distinct."""
    names = sorted(set(map(str, names)))
    taken = set(reserved)
    out: dict[str, str] = {}
    natural = [n for n in names if n not in reserved and _encode(n, _NAME_OK, True) == n]
    for n in natural:  # valid names keep their name; mapped ones must not take it
        out[n] = n
        taken.add(n)
    for n in names:
        if n in out:
            continue
        base = _encode(n, _NAME_OK, True)
        base = base + "_" if base in reserved else base
        cand, i = base, 2
        while cand in taken:
            cand, i = f"{base}_{i}", i + 1
        out[n] = cand
        taken.add(cand)
    return out


# ------------------------------------------------------------------------------ values


def _scalar(v):
    """One cell → a value the XML writers take (None = missing)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return json.dumps(v.tolist() if isinstance(v, np.ndarray) else list(v), ensure_ascii=False, default=str)
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, default=str, sort_keys=True)
    s = str(v)
    return s if s != "" else None


def column_values(s: pd.Series) -> list:
    """A column as Python values for the writers, None where missing (see module doc)."""
    if pdt.is_bool_dtype(s.dtype) and not s.hasnans:
        return [bool(v) for v in s.to_numpy()]
    if pdt.is_integer_dtype(s.dtype):
        return [None if v is pd.NA else int(v) for v in s.astype("object").tolist()] if s.hasnans \
            else s.astype("int64").tolist()
    if pdt.is_float_dtype(s.dtype):
        return [None if math.isnan(v) else v for v in s.astype("float64").tolist()]
    return [_scalar(v) for v in s.tolist()]


# ------------------------------------------------------------------------------ selection


@dataclass(frozen=True)
class Selection:
    """Which part of the graph to export.

    ``cohort``: everything. ``patients``: the listed patients and every node reachable from
    them along the edges' direction (their mutations, genes, pathways, treatments, panels and
    the panels' genes). ``neighbourhood``: every node within ``hops`` edges of ``centre``
    ignoring direction (networkx's ``ego_graph(..., undirected=True)``). Edges: all edges
    between selected nodes.
    """

    kind: str = "cohort"
    patients: tuple[str, ...] = ()
    centre: str | None = None
    hops: int = 2

    def describe(self) -> str:
        if self.kind == "patients":
            return f"{len(self.patients)} patient(s) and what they link to"
        if self.kind == "neighbourhood":
            return f"{self.hops}-hop neighbourhood of {self.centre}"
        return "whole cohort"


@dataclass
class GraphTables:
    """The run's node and edge tables (``id``; ``src``/``dst`` + properties), read once."""

    nodes: dict[str, pd.DataFrame]
    edges: dict[S.EdgeType, pd.DataFrame]

    @classmethod
    def of_run(cls, run) -> "GraphTables":
        return cls({lab: run.nodes(lab) for lab in run.node_types()}, {e: run.edges(e) for e in run.edge_types()})

    def resolve(self, ref: str) -> tuple[str, str]:
        """``"Label:id"`` or a bare id (unique across node types) → (label, id)."""
        label, _, rest = ref.partition(":")
        if label in self.nodes and rest and self.nodes[label][S.ID].eq(rest).any():
            return label, rest
        hits = [lab for lab, df in self.nodes.items() if df[S.ID].eq(ref).any()]
        if len(hits) == 1:
            return hits[0], ref
        if hits:
            raise GraphoncError(f"node id {ref!r} is a {' and a '.join(sorted(hits))}. "
                                f"Fix: say which, e.g. {sorted(hits)[0]}:{ref}.")
        known = [i for df in self.nodes.values() for i in df[S.ID].astype(str)]
        raise GraphoncError(f"no node with id {ref!r} in the run.{did_you_mean(ref, known)} "
                            "Fix: give a node id of the run (column id of graph/nodes/<Label>.parquet), "
                            "optionally as Label:id.")

    def select(self, sel: Selection) -> dict[str, set] | None:
        """Selected ids per node label (None = everything)."""
        if sel.kind == "cohort":
            return None
        if sel.kind == "patients":
            known = set(self.nodes[S.PATIENT][S.ID])
            missing = [p for p in sel.patients if p not in known]
            if missing:
                raise unknown_patient(missing[0], known, "the run")
            reached = {S.PATIENT: set(sel.patients)}
            frontier = dict(reached)
            while frontier:  # follow edges forwards until nothing new is reached
                new: dict[str, set] = {}
                for (s, _, d), df in self.edges.items():
                    if s in frontier and s != d:
                        got = set(df.loc[df[S.SRC].isin(frontier[s]), S.DST]) - reached.get(d, set())
                        if got:
                            new.setdefault(d, set()).update(got)
                for lab, ids in new.items():
                    reached.setdefault(lab, set()).update(ids)
                frontier = new
            return reached
        if sel.kind == "neighbourhood":
            if sel.hops < 0:
                raise GraphoncError(f"--hops must be 0 or more, got {sel.hops}.")
            label, cid = self.resolve(sel.centre)
            reached = {label: {cid}}
            frontier = {label: {cid}}
            for _ in range(sel.hops):
                new: dict[str, set] = {}
                for (s, _, d), df in self.edges.items():
                    if s in frontier:
                        new.setdefault(d, set()).update(df.loc[df[S.SRC].isin(frontier[s]), S.DST])
                    if d in frontier:
                        new.setdefault(s, set()).update(df.loc[df[S.DST].isin(frontier[d]), S.SRC])
                frontier = {lab: ids - reached.get(lab, set()) for lab, ids in new.items()}
                frontier = {lab: ids for lab, ids in frontier.items() if ids}
                for lab, ids in frontier.items():
                    reached.setdefault(lab, set()).update(ids)
                if not frontier:
                    break
            return reached
        raise GraphoncError(f"unknown selection {sel.kind!r}")


# ------------------------------------------------------------------------------ the graph


@dataclass
class Mapping:
    """What had to be mapped for XML (see module doc); JSON-serialisable via :meth:`to_dict`."""

    node_properties: dict[str, str] = field(default_factory=dict)   # xml name → original
    edge_properties: dict[str, str] = field(default_factory=dict)
    node_ids: dict[str, list[str]] = field(default_factory=dict)     # node key → [label, original id]
    values: list[list] = field(default_factory=list)                 # [node|edge, key, xml property, original]

    def to_dict(self) -> dict:
        return {"format": "graphonc-xml-mapping/1", "node_properties": self.node_properties,
                "edge_properties": self.edge_properties, "node_ids": self.node_ids, "values": self.values}

    def to_json(self) -> str:
        # ASCII only: control characters become \\u escapes, so the JSON fits in XML as it is
        return json.dumps(self.to_dict(), ensure_ascii=True, sort_keys=True)


def _safe_text(values: list, where: str, keys: Sequence[str], prop: str, mapping: Mapping) -> list:
    out = values
    for i, v in enumerate(values):
        if isinstance(v, str) and _XML_UNSAFE.search(v):
            if out is values:
                out = list(values)
            out[i] = _XML_UNSAFE.sub("\ufffd", v)
            mapping.values.append([where, keys[i], prop, v])
    return out


def _as_text(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _harmonise(tables: list[dict[str, list]]) -> None:
    """One value type per property name across all tables (GEXF declares one type per attribute
    title, and readers convert every value to it): ints with floats become floats, any other
    mix becomes text."""
    kinds: dict[str, set] = {}
    for cols in tables:
        for name, vals in cols.items():
            kinds.setdefault(name, set()).update(type(v) for v in vals if v is not None)
    for cols in tables:
        for name, vals in cols.items():
            k = kinds[name]
            if len(k) < 2:
                continue
            if k == {int, float}:
                cols[name] = [float(v) if isinstance(v, int) else v for v in vals]
            else:
                cols[name] = [None if v is None else _as_text(v) for v in vals]


def to_networkx(tables: GraphTables, selection: Selection = Selection(), similar: pd.DataFrame | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[nx.MultiDiGraph, Mapping]:
    """The selected part of the graph as a MultiDiGraph (see module doc) and what was mapped.

    ``similar``: optional SIMILAR_TO edges, columns src, dst (patient ids) + properties
    (score, rank, model), added between selected patients. ``progress(n)`` is called with the
    number of rows added after each table.
    """
    keep = tables.select(selection)
    node_tables = {lab: (df if keep is None else df[df[S.ID].isin(keep.get(lab, set()))])
                   for lab, df in sorted(tables.nodes.items())}
    node_tables = {lab: df for lab, df in node_tables.items() if len(df)}
    edge_tables = dict(sorted(tables.edges.items()))
    if similar is not None:
        edge_tables[(S.PATIENT, SIMILAR_TO, S.PATIENT)] = similar
    for e, df in list(edge_tables.items()):
        if keep is not None:
            df = df[df[S.SRC].isin(keep.get(e[0], set())) & df[S.DST].isin(keep.get(e[2], set()))]
        edge_tables[e] = df
    edge_tables = {e: df for e, df in edge_tables.items() if len(df)}

    mapping = Mapping()
    nprops = xml_names({c for df in node_tables.values() for c in df.columns if c != S.ID}, RESERVED_NODE)
    eprops = xml_names({c for df in edge_tables.values() for c in df.columns if c not in (S.SRC, S.DST)},
                       RESERVED_EDGE)
    mapping.node_properties = {x: o for o, x in nprops.items() if x != o}
    mapping.edge_properties = {x: o for o, x in eprops.items() if x != o}

    g = nx.MultiDiGraph()
    keys_of: dict[str, pd.Series] = {}
    node_cols: dict[str, dict[str, list]] = {}
    for lab, df in node_tables.items():
        ids = df[S.ID].astype(str).tolist()
        keys = [node_key(lab, i) for i in ids]
        keys_of[lab] = pd.Series(keys, index=ids)
        if len(set(keys)) != len(keys):
            raise GraphoncError(f"graph/nodes/{lab}.parquet: duplicate ids; the run is damaged. "
                                "Fix: rebuild it with `graphonc build-graph`.")
        for k, i in zip(keys, ids):
            if decode(k.split(":", 1)[1]) != k.split(":", 1)[1]:
                mapping.node_ids[k] = [lab, i]
        cols = {nprops[c]: column_values(df[c]) for c in df.columns if c != S.ID}
        node_cols[lab] = {name: _safe_text(v, "node", keys, name, mapping) for name, v in cols.items()}
    _harmonise(list(node_cols.values()))
    for lab, cols in node_cols.items():
        ids = keys_of[lab].index.tolist()
        keys = keys_of[lab].tolist()
        labels = _safe_text(list(ids), "node", keys, "label", mapping)
        names = list(cols)
        rows = zip(*cols.values()) if cols else ((),) * len(keys)
        g.add_nodes_from((k, {"node_type": lab, "label": lb, **{n: v for n, v in zip(names, r) if v is not None}})
                         for k, lb, r in zip(keys, labels, rows))
        if progress:
            progress(len(keys))
    n_edges = 0
    edge_tables = {e: df for e, df in edge_tables.items() if e[0] in keys_of and e[2] in keys_of}
    edge_keys, edge_cols = {}, {}
    for e, df in edge_tables.items():
        edge_keys[e] = [f"e{n_edges + i}" for i in range(len(df))]
        n_edges += len(df)
        cols = {eprops[c]: column_values(df[c]) for c in df.columns if c not in (S.SRC, S.DST)}
        edge_cols[e] = {name: _safe_text(v, "edge", edge_keys[e], name, mapping) for name, v in cols.items()}
    _harmonise(list(edge_cols.values()))
    for (s, rel, d), df in edge_tables.items():
        src = df[S.SRC].astype(str).map(keys_of[s])
        dst = df[S.DST].astype(str).map(keys_of[d])
        if src.isna().any() or dst.isna().any():
            bad = df.loc[src.isna() | dst.isna()].iloc[0]
            raise GraphoncError(f"graph/edges/{S.edge_name((s, rel, d))}.parquet: edge {bad[S.SRC]!r} -> "
                                f"{bad[S.DST]!r} names a node that is not in the node tables; the run is damaged. "
                                "Fix: rebuild it with `graphonc build-graph`.")
        ekeys, cols = edge_keys[(s, rel, d)], edge_cols[(s, rel, d)]
        names = list(cols)
        rows = zip(*cols.values()) if cols else ((),) * len(df)
        g.add_edges_from((u, v, k, {"label": rel, **{n: x for n, x in zip(names, r) if x is not None}})
                         for u, v, k, r in zip(src.tolist(), dst.tolist(), ekeys, rows))
        if progress:
            progress(len(df))
    return g, mapping


# ------------------------------------------------------------------------------ files


def write(g: nx.MultiDiGraph, path, fmt: str) -> None:
    """Write ``g`` with networkx's GraphML or GEXF writer."""
    if fmt == "graphml":
        nx.write_graphml(g, path, infer_numeric_types=True)
    elif fmt == "gexf":
        # GEXF edge ids come from the data's "id" (else a counter): use the edge keys, as GraphML does,
        # so the mapping's edge values point at the right edge in both formats
        for *_, k, d in g.edges(keys=True, data=True):
            d["id"] = k
        try:
            nx.write_gexf(g, path)
        finally:
            for *_, d in g.edges(data=True):
                d.pop("id", None)
    else:
        raise GraphoncError(f"unknown graph format {fmt!r}; expected one of {', '.join(WRITERS)}.")


def _serialised_bytes(g: nx.MultiDiGraph, fmt: str) -> int:
    buf = io.BytesIO()
    write(g, buf, fmt)
    return len(buf.getvalue())


def estimate_bytes(g: nx.MultiDiGraph, fmt: str, sample: int = 2000) -> int:
    """Size of ``write(g, ..., fmt)`` from up to ``sample`` nodes and edges written to memory."""
    nodes = list(g.nodes)
    edges = list(g.edges(keys=True))
    empty = _serialised_bytes(nx.MultiDiGraph(), fmt)
    total = empty
    if nodes:
        pick = nodes[::max(1, len(nodes) // sample)]
        h = nx.MultiDiGraph()
        h.add_nodes_from((n, g.nodes[n]) for n in pick)
        total += (_serialised_bytes(h, fmt) - empty) / len(pick) * len(nodes)
    if edges:
        pick = edges[::max(1, len(edges) // sample)]
        h = nx.MultiDiGraph()
        h.add_edges_from((u, v, k, g.edges[u, v, k]) for u, v, k in pick)
        bare = nx.MultiDiGraph()
        bare.add_nodes_from(h.nodes)
        total += (_serialised_bytes(h, fmt) - _serialised_bytes(bare, fmt)) / len(pick) * len(edges)
    return int(total)


def restore(g: nx.MultiDiGraph, mapping: dict) -> nx.MultiDiGraph:
    """A graph read back from an export, with original ids, property names and values.

    Nodes become ``(label, id)`` tuples; node data ``node_type``/``label`` are dropped in
    favour of the tuple; edges keep their ``label`` (the relationship type).
    """
    nprops, eprops = mapping.get("node_properties", {}), mapping.get("edge_properties", {})
    vals = {(w, k, p): v for w, k, p, v in mapping.get("values", [])}
    out = nx.MultiDiGraph()
    ident = {}
    for n, data in g.nodes(data=True):
        lab, _, enc = str(n).partition(":")
        ident[n] = (lab, decode(enc))
        props = {nprops.get(k, k): vals.get(("node", n, k), v) for k, v in data.items()
                 if k not in ("node_type", "label")}
        out.add_node(ident[n], **props)
    # read_gexf returns a DiGraph when no two edges share their ends, with each edge's id in its data
    edges = g.edges(keys=True, data=True) if g.is_multigraph() else ((u, v, None, d) for u, v, d in g.edges(data=True))
    for u, v, k, data in edges:
        k = data.get("id", k)
        props = {eprops.get(a, a): vals.get(("edge", k, a), x) for a, x in data.items() if a != "id"}
        out.add_edge(ident[u], ident[v], **props)
    return out
