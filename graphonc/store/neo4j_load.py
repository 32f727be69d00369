"""Load a run folder into Neo4j and write model results back, with the official driver.

* Every node carries ``cohort``; uniqueness constraints on ``(cohort, id)`` per label are
  created first, so two cohorts share one database without mixing.
* Rows go in batches, one transaction per batch, never a query per row. Values are always
  parameters; labels and relationship types are interpolated only from the fixed schema in
  :mod:`graphonc.graph.schema`. Property names (the run's column names, mapped to safe keys
  by build-graph) are pasted as plain identifiers, each checked by
  :func:`graphonc.identifiers.assert_ident` where the query is built; nothing is ever
  backtick-quoted (Neo4j decodes escapes inside quotes). A dynamic key (``SET n[$keys[0]] = …``)
  would keep names out of the text as well but cost the server 60% more time per node.
* Idempotent: every loaded node gets ``load_id`` (a hash of the run's table contents), and so
  does every relationship written by ``MERGE``; a relationship table written by ``CREATE`` is
  instead marked complete once, by a ``(:GraphoncLoad {cohort, table, load_id})`` node written
  after its last batch (withdrawn before its first), which saves the server a property write
  per relationship. Per table the loader first counts what the cohort already holds:

  - exactly the table's items with this ``load_id``: skip the table (same content, all there);
  - nothing of that label/type: ``CREATE`` (no per-row existence check);
  - anything else (an interrupted load, an older build): ``MERGE`` on the keys.

  After a complete load, nodes and relationships of the cohort with another (or, for tables
  not written by ``CREATE``, no) ``load_id`` (left from an older build) are deleted. Loading the same run twice leaves the database
  identical; a load interrupted midway is simply rerun (it takes the ``MERGE`` path where it
  stopped). Loads of one cohort run one at a time (:func:`_cohort_lock`): a second waits for the first.

Why batches are not lists of dicts: the driver packs parameters in pure Python at a few µs
per value, which capped loads near 10k rows/s. A batch travels column by column instead,
each column one joined string that the server splits (:class:`Column`), and relationship
endpoints are looked up once per distinct id per batch rather than twice per row.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from neo4j import Driver, GraphDatabase, Session
from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.progress import make_progress
from graphonc.identifiers import LOADER_KEYS, assert_ident

log = logging.getLogger("graphonc")

SIMILAR_TO = "SIMILAR_TO"
#: One node per cohort whose write lock a load holds from start to end (:func:`_cohort_lock`).
LOAD_LOCK = "GraphoncLoadLock"
#: Label of the per-(cohort, relationship table) completion markers.
MARKER = "GraphoncLoad"
_ALLOWED_LABELS = set(S.NODE_TYPES) | {LOAD_LOCK, MARKER}
_ALLOWED_RELS = {e[1] for e in S.EDGE_TYPES} | {SIMILAR_TO}


@dataclass(frozen=True)
class Neo4jSettings:
    """Where the graph store is. From the environment (or a config file) — never from code.

    ``NEO4J_URI`` (``bolt://127.0.0.1:7687``; ``neo4j://`` or ``neo4j+s://`` for a cluster or
    Aura), ``NEO4J_USER`` (``neo4j``), ``NEO4J_PASSWORD``, ``NEO4J_DATABASE`` (``neo4j``).
    """

    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: str | None = None
    database: str = "neo4j"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Neo4jSettings":
        """Settings from the environment; without ``NEO4J_URI``, the bundled local server.

        The password is looked up like the local server's (``NEO4J_PASSWORD``,
        ``GRAPHONC_NEO4J_PASSWORD_FILE``, ``~/.config/graphonc/neo4j.env``, the generated
        ``<data dir>/neo4j_password``); it is never logged.
        """
        from graphonc.store import neo4j_server as ns

        env = os.environ if env is None else env
        local = ns.Neo4jServerConfig(bolt_port=int(env.get("GRAPHONC_NEO4J_BOLT_PORT", 7687)),
                                     http_port=int(env.get("GRAPHONC_NEO4J_HTTP_PORT", 7474)))
        found = ns.configured_password(local, env)
        uri = env.get("NEO4J_URI") or f"bolt://127.0.0.1:{local.bolt_port}"
        return cls(uri=uri, user=env.get("NEO4J_USER", cls.user), password=found[0] if found else None,
                   database=env.get("NEO4J_DATABASE", cls.database))

    @property
    def shown_uri(self) -> str:
        """The URI for messages: any ``user:password@`` in it removed."""
        parts = urllib.parse.urlsplit(self.uri)
        if parts.username is None and parts.password is None:
            return self.uri
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))

    def driver(self) -> Driver:
        """A driver whose server answered and accepted the credentials.

        Raises:
            GraphoncError: one line naming the URI (never the password) when the server is down,
                the port is not Neo4j's Bolt port, the URI is malformed or the login is refused.
        """
        if not self.password:
            raise GraphoncError("no Neo4j password: set NEO4J_PASSWORD (or GRAPHONC_NEO4J_PASSWORD_FILE), "
                                "or start the bundled server with `graphonc neo4j start`.")
        try:
            driver = GraphDatabase.driver(self.uri, auth=(self.user, self.password))
        except (ValueError, DriverError) as exc:  # an unknown scheme, a malformed address
            raise GraphoncError(f"Neo4j URI {self.shown_uri!r} is not valid: {self._safe(exc)}. Fix: set NEO4J_URI "
                                "to e.g. bolt://127.0.0.1:7687 (credentials in NEO4J_USER / NEO4J_PASSWORD).") from None
        try:
            driver.verify_connectivity()
        except (DriverError, Neo4jError) as exc:
            driver.close()
            raise self.unreachable(exc) from None
        return driver

    def unreachable(self, exc: Exception) -> GraphoncError:
        """The one-line error for a failed connection (``exc`` from the driver)."""
        if isinstance(exc, AuthError):
            return GraphoncError(f"Neo4j at {self.shown_uri} refused user {self.user!r}: wrong user or password. "
                                 "Fix: set NEO4J_USER / NEO4J_PASSWORD (or GRAPHONC_NEO4J_PASSWORD_FILE) to the "
                                 "server's credentials.")
        if isinstance(exc, ServiceUnavailable):
            return GraphoncError(f"cannot reach Neo4j at {self.shown_uri}: no Bolt server answers there "
                                 "(down, or the wrong host/port). Fix: start it (`graphonc neo4j start`) or set "
                                 "NEO4J_URI to its Bolt address (port 7687 by default, not the 7474 browser port).")
        return GraphoncError(f"Neo4j at {self.shown_uri}: {type(exc).__name__}: {self._safe(exc)}. "
                             "Fix: check NEO4J_URI, NEO4J_USER and the server's log.")

    def _safe(self, exc: Exception) -> str:
        """The first line of the driver's message, with the URI shown as :attr:`shown_uri` and no password."""
        lines = str(exc).strip().splitlines()
        text = (lines[0][:200] if lines else type(exc).__name__).replace(self.uri, self.shown_uri).rstrip(".")
        return text.replace(self.password, "***") if self.password else text


def _label_ident(label: str) -> str:
    """A node label for Cypher text: one of graphonc's own, and a valid identifier."""
    if label not in _ALLOWED_LABELS:
        raise ValueError(f"unknown node label {label!r}")
    return assert_ident(label, "node label")


def _rel_ident(rel: str) -> str:
    """A relationship type for Cypher text: one of graphonc's own, and a valid identifier."""
    if rel not in _ALLOWED_RELS:
        raise ValueError(f"unknown relationship type {rel!r}")
    return assert_ident(rel, "relationship type")


def _clean(v):
    """A pandas/numpy cell → a Bolt value (None for missing)."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    return v


def schema_statements() -> list[str]:
    """A uniqueness constraint on (cohort, id) per label (its index also finds a cohort's nodes),
    and one on the cohort of the load-lock nodes (so concurrent loads MERGE the same one)."""
    return [f"CREATE CONSTRAINT {assert_ident(label.lower() + '_key')} IF NOT EXISTS FOR (n:{_label_ident(label)}) "
            "REQUIRE (n.cohort, n.id) IS UNIQUE" for label in S.NODE_TYPES] + [
        f"CREATE CONSTRAINT graphonc_load_lock IF NOT EXISTS FOR (n:{_label_ident(LOAD_LOCK)}) REQUIRE n.cohort IS UNIQUE"]


def _retired_indexes() -> list[str]:
    # Older graphonc versions indexed load_id per label; no query seeks on it (stale-data cleanup
    # compares it with <> within a cohort) and every node write paid for the index entry.
    return [f"DROP INDEX {assert_ident(label.lower() + '_load')} IF EXISTS" for label in S.NODE_TYPES]


def ensure_schema(driver: Driver, database: str) -> None:
    for stmt in schema_statements() + _retired_indexes():
        try:
            driver.execute_query(stmt, database_=database)
        except ClientError as e:  # a concurrent load created it between IF NOT EXISTS's check and ours
            if "AlreadyExists" not in (e.code or ""):
                raise
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)


@contextmanager
def _cohort_lock(driver: Driver, database: str, cohort: str, note_after_s: float = 3.0) -> Iterator[None]:
    """Run one load of ``cohort`` at a time: a second load waits here until the first ends.

    The lock is the write lock of the cohort's ``(:GraphoncLoadLock {cohort})`` node, held by a
    transaction left open for the whole load and rolled back at its end. A load whose process
    dies loses it with its connection (the server rolls the transaction back), so no stale lock
    outlives a crash. Without it two first loads could both take the CREATE path.
    """
    with driver.session(database=database) as session:
        session.run(f"MERGE (:{_label_ident(LOAD_LOCK)} {{cohort: $cohort}})", cohort=cohort).consume()
        tx = session.begin_transaction()
        try:
            note = threading.Timer(note_after_s, log.warning,
                                   ("waiting for another load of cohort %s into Neo4j to finish", cohort))
            note.start()
            try:  # blocks while another load's transaction holds the node's write lock
                tx.run(f"MATCH (l:{_label_ident(LOAD_LOCK)} {{cohort: $cohort}}) SET l.loading_since = datetime()",
                       cohort=cohort).consume()
            finally:
                note.cancel()
            yield
        finally:
            try:
                tx.rollback()  # releases the lock; nothing of it is kept
            except (Neo4jError, DriverError) as e:  # the server already ended it (timeout, restart): no lock left
                log.warning("releasing the load lock of cohort %s: %s", cohort, e)


def load_id_of(run: GraphRun) -> str:
    """Content hash of the run's tables: equal runs get equal load ids."""
    blob = json.dumps(run.manifest["table_sha256"], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Wire format: one batch column = one parameter

SEP = "\x1f"  # ASCII unit separator; a string column that contains it travels as a list
_RESERVED = LOADER_KEYS  # set by the loader, never from a table column
_FLOAT_TEXT = {"nan": "", "inf": "Infinity", "-inf": "-Infinity"}  # repr() → what toFloat() parses
_CONVERT = {"str": "nullIf(x, '')", "int": "toInteger(x)", "float": "toFloat(x)", "bool": "toBoolean(x)"}


@dataclass(frozen=True)
class Column:
    """One column of a batch as one query parameter.

    ``kind`` "str", "int", "float" or "bool": ``data`` is the values joined by :data:`SEP`, an
    empty field for a missing value (floats as ``repr``, so they round-trip exactly); packing
    one string costs nothing, where the driver packs a list at a few µs per item.
    ``kind`` "value": ``data`` is a plain list (lists/arrays, mixed types, strings that are
    empty or contain SEP): slower, same result.
    """

    kind: str
    data: str | list

    def head(self, name: str) -> str:
        """Cypher binding ``$name`` to a list variable ``name`` of typed values (null = missing)."""
        if self.kind == "value":
            return f"${name} AS {name}"
        return f"[x IN split(${name}, $sep) | {_CONVERT[self.kind]}] AS {name}"


def encode_column(values: pd.Series | np.ndarray) -> Column:
    """A column → :class:`Column`; missing values become nulls, i.e. absent properties."""
    s = pd.Series(values, copy=False)
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if pd.api.types.is_bool_dtype(s.dtype):
        return Column("bool", SEP.join(["" if v is pd.NA else "true" if v else "false"
                                        for v in s.astype(object).tolist()]))
    if pd.api.types.is_integer_dtype(s.dtype):
        return Column("int", SEP.join(["" if v is pd.NA else str(v) for v in s.astype(object).tolist()]))
    if pd.api.types.is_float_dtype(s.dtype):
        floats = s.to_numpy(dtype="float64", na_value=np.nan).tolist()
        return Column("float", SEP.join([_FLOAT_TEXT.get(t, t) for t in map(repr, floats)]))
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        present = s.notna().to_numpy()
        text = s.astype(object).where(present, "")
        # "" would read back as missing and SEP would split a value: such columns go as lists
        if not (text[present] == "").any() and not text.str.contains(SEP, regex=False).any():
            return Column("str", SEP.join(text.tolist()))
    return Column("value", [_clean(v) for v in s.astype(object).tolist()])


@dataclass(frozen=True)
class _Batch:
    query: str
    params: dict
    rows: int


# A transaction's state costs the server ~250 bytes per property value, and the default limit
# for all transactions is 70% of the heap: 100k patients with 28 properties overflowed a 1g heap.
# So a batch holds at most this many values (rows × (1 + property columns)).
_VALUES_PER_BATCH = 500_000


def _rows_per_batch(batch_size: int, n_props: int) -> int:
    return max(1, min(batch_size, _VALUES_PER_BATCH // (1 + n_props)))


def _prop_columns(df: pd.DataFrame, keys: list[str], create: bool) -> list[str]:
    cols = [c for c in df.columns if c not in keys and c not in _RESERVED]
    if create:  # a null on a new item sets nothing: leave all-missing columns out (e.g. vaf)
        cols = [c for c in cols if df[c].notna().any()]
    return cols


def _encode_props(part: pd.DataFrame, cols: list[str]) -> tuple[list[Column], dict]:
    encoded = [encode_column(part[c]) for c in cols]
    return encoded, {f"c{j}": col.data for j, col in enumerate(encoded)}


def _set_clause(var: str, cols: list[str], load_id: bool = True) -> str:
    """``SET var.load_id = $load_id, var.col0 = c0[i], …``; a null removes the property.

    ``cols`` are the table's column names, safe keys since build-graph (:func:`assert_ident`
    refuses anything else, e.g. a run built by an older graphonc).
    """
    sets = [f"{var}.load_id = $load_id"] if load_id else []
    sets += [f"{var}.{assert_ident(c, 'property name')} = c{j}[i]" for j, c in enumerate(cols)]
    return "SET " + ", ".join(sets) if sets else ""


#: How a node batch finds its nodes: a first load creates them, a resumed load merges them, a
#: write-back (model outputs) only sets properties on nodes that exist.
NODE_MODES = ("CREATE", "MERGE", "MATCH")


def _node_query(label: str, ids: Column, props: list[Column], cols: list[str], mode: str) -> str:
    if mode not in NODE_MODES:
        raise ValueError(f"unknown node write mode {mode!r}")
    heads = [ids.head("ids"), *(c.head(f"c{j}") for j, c in enumerate(props))]
    return "\n".join([
        "WITH " + ", ".join(heads),
        "UNWIND range(0, size(ids) - 1) AS i",
        f"{mode} (n:{_label_ident(label)} {{cohort: $cohort, id: ids[i]}})",
        _set_clause("n", cols, load_id=mode != "MATCH"),
        "RETURN count(*) AS n"])


def _edge_query(edge: S.EdgeType, keys: dict[str, Column], props: list[Column], cols: list[str],
                create: bool) -> str:
    """``keys``: the batch's distinct src/dst ids (``su``/``du``), looked up once each, and every
    row's positions in them (``si``/``di``). ``ax = su AND bx = du``: every endpoint was found,
    in order; otherwise the batch writes nothing (and :func:`_write_streams` raises)."""
    src, rel, dst = edge
    carried = "".join(f", c{j}" for j in range(len(props)))
    heads = [*(c.head(name) for name, c in keys.items()), *(c.head(f"c{j}") for j, c in enumerate(props))]
    return "\n".join([
        "WITH " + ", ".join(heads),
        f"CALL (su) {{ UNWIND su AS x MATCH (a:{_label_ident(src)} {{cohort: $cohort, id: x}}) "
        "RETURN collect(a) AS an, collect(x) AS ax }",
        f"CALL (du) {{ UNWIND du AS x MATCH (b:{_label_ident(dst)} {{cohort: $cohort, id: x}}) "
        "RETURN collect(b) AS bn, collect(x) AS bx }",
        "WITH * WHERE ax = su AND bx = du",
        "UNWIND range(0, size(si) - 1) AS i",
        f"WITH an[si[i]] AS a, bn[di[i]] AS b, i{carried}",
        f"{'CREATE' if create else 'MERGE'} (a)-[r:{_rel_ident(rel)}]->(b)",
        # a first load marks the table complete once (see _mark) instead of every relationship
        _set_clause("r", cols, load_id=not create),
        "RETURN count(*) AS n"])


def _node_batches(label: str, df: pd.DataFrame, create: bool | str, size: int) -> Iterator[_Batch]:
    """Batches writing ``df`` (``id`` + property columns); ``create``: True/False for a load's
    CREATE/MERGE, or one of :data:`NODE_MODES`."""
    mode = create if isinstance(create, str) else "CREATE" if create else "MERGE"
    cols = _prop_columns(df, [S.ID], mode == "CREATE")
    size = _rows_per_batch(size, len(cols))
    for start in range(0, len(df), size):
        part = df.iloc[start:start + size]
        ids = encode_column(part[S.ID])
        props, params = _encode_props(part, cols)
        yield _Batch(_node_query(label, ids, props, cols, mode), {"ids": ids.data, **params}, len(part))


def _edge_batches(edge: S.EdgeType, df: pd.DataFrame, create: bool, size: int) -> Iterator[_Batch]:
    cols = _prop_columns(df, [S.SRC, S.DST], create)
    size = _rows_per_batch(size, len(cols))
    for start in range(0, len(df), size):
        part = df.iloc[start:start + size]
        si, su = pd.factorize(part[S.SRC])
        di, du = pd.factorize(part[S.DST])
        if (si < 0).any() or (di < 0).any():
            raise GraphoncError(f"{S.edge_name(edge)}: a row without src or dst id")
        keys = {name: encode_column(v) for name, v in (("su", su), ("du", du), ("si", si), ("di", di))}
        props, params = _encode_props(part, cols)
        yield _Batch(_edge_query(edge, keys, props, cols, create),
                     {**{name: c.data for name, c in keys.items()}, **params}, len(part))


def _prefetched(items: Iterator[_Batch]) -> Generator[_Batch, None, None]:
    """``items``, the next one encoded in a thread while the server writes the current one."""
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(next, items, None)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(next, items, None)
            yield item


# ---------------------------------------------------------------------------------------------
# load_run


@dataclass
class LoadReport:
    cohort: str
    load_id: str
    nodes: dict[str, int]
    relationships: dict[str, int]
    deleted_stale_nodes: int
    deleted_stale_relationships: int
    seconds: float
    #: per table: "create" (the cohort had none), "merge" (it had some) or "skip" (all there)
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.nodes.values()) + sum(self.relationships.values())


def _node_pattern(label: str) -> str:
    return f"(x:{_label_ident(label)} {{cohort: $cohort}})"


def _edge_pattern(edge: S.EdgeType) -> str:
    return f"(:{_label_ident(edge[0])} {{cohort: $cohort}})-[x:{_rel_ident(edge[1])}]->()"


#: A table is written by several concurrent streams when each gets at least this many rows (or a
#: whole batch, if batches are smaller).
MIN_ROWS_PER_STREAM = 10_000


@dataclass(frozen=True)
class _Table:
    name: str  # label or edge table stem: progress, on_batch, LoadReport.modes
    pattern: str  # binds ``x`` to the cohort's items of this label/type
    is_edge: bool
    df: pd.DataFrame
    keys: list[str]  # the columns that identify an item
    make: Callable[[pd.DataFrame, bool, int], Iterator[_Batch]]  # (rows, create?, batch size) → batches

    def expected(self) -> tuple[int, bool]:
        """Items the table makes (MERGE folds repeated keys) and whether its keys are unique."""
        repeated = int(self.df.duplicated(self.keys).sum())
        return len(self.df) - repeated, repeated == 0

    def parts(self, size: int, workers: int) -> list[pd.DataFrame]:
        """The table's rows split into up to ``workers`` parts, written by concurrent streams.

        Rows are split by their first key (a node's id, a relationship's source), so each node
        (and each relationship's MERGE key) belongs to one stream: concurrent streams never race
        on the same item, and two streams touching one target node (a gene, a treatment) at worst
        meet a deadlock, which the driver's managed transactions retry.
        """
        w = max(1, min(workers, len(self.df) // min(size, MIN_ROWS_PER_STREAM)))
        if w == 1:
            return [self.df]
        stream = pd.factorize(self.df[self.keys[0]])[0] % w
        return [self.df[stream == i] for i in range(w)]


def _node_table(label: str, df: pd.DataFrame) -> _Table:
    return _Table(label, _node_pattern(label), False, df, [S.ID],
                  lambda rows, create, size: _node_batches(label, rows, create, size))


def _edge_table(edge: S.EdgeType, df: pd.DataFrame) -> _Table:
    return _Table(S.edge_name(edge), _edge_pattern(edge), True, df, [S.SRC, S.DST],
                  lambda rows, create, size: _edge_batches(edge, rows, create, size))


def _held(session: Session, t: "_Table", params: dict) -> tuple[int, int]:
    """(all, with this load_id) items of table ``t`` the cohort holds.

    Relationships written by a first (CREATE) load carry no ``load_id``: 8 µs each of server
    time saved. A :data:`MARKER` node records that such a table was loaded completely with a
    given load_id, and then all of the type's relationships count as current.
    """
    q = (f"MATCH {t.pattern} RETURN count(x) AS total, "  # pattern: validated by _label_ident/_rel_ident
         "count(CASE WHEN x.load_id = $load_id THEN 1 END) AS current")
    rec = session.execute_read(lambda tx: tx.run(q, params).single())
    total, current = rec["total"], rec["current"]
    if t.is_edge and current < total:
        q = f"MATCH (m:{_label_ident(MARKER)} {{cohort: $cohort, table: $table}}) RETURN m.load_id AS load_id"
        marker = session.execute_read(lambda tx: tx.run(q, {**params, "table": t.name}).single())
        if marker is not None and marker["load_id"] == params["load_id"]:
            current = total
    return total, current


def _mark(session: Session, table: str, params: dict, complete: bool) -> None:
    """Record (or, before writing, withdraw) that ``table`` holds this load's relationships."""
    if complete:
        q = f"MERGE (m:{_label_ident(MARKER)} {{cohort: $cohort, table: $table}}) SET m.load_id = $load_id"
    else:
        q = f"MATCH (m:{_label_ident(MARKER)} {{cohort: $cohort, table: $table}}) DELETE m"
    session.execute_write(lambda tx: tx.run(q, {**params, "table": table}).consume())


def _mode(held: int, current: int, expected: int, unique: bool) -> str:
    if current == expected:
        return "skip"  # same load_id = same content, and all of it is there
    return "create" if held == 0 and unique else "merge"


def load_run(run: GraphRun, settings: Neo4jSettings | None = None, *, batch_size: int = 100_000,
             progress: bool = False, driver: Driver | None = None,
             on_batch: Callable[[str, int], None] | None = None, workers: int = 2) -> LoadReport:
    """Load every node and edge table of ``run`` into Neo4j (idempotent; see module doc).

    Args:
        batch_size: rows per transaction (fewer for tables with many property columns).
        on_batch: called after each committed batch with (table name, rows so far); tests
            use it to interrupt a load midway.
        workers: concurrent write streams per large table (:meth:`_Table.parts`); one server
            transaction runs on one core, so two keep a 2-core server busier (~20% faster).
    """
    if workers < 1:
        raise GraphoncError(f"workers must be at least 1, got {workers}")
    settings = settings or Neo4jSettings.from_env()
    own = driver is None
    driver = driver or settings.driver()
    t0 = time.perf_counter()
    try:
        driver.verify_connectivity()
        ensure_schema(driver, settings.database)
        with _cohort_lock(driver, settings.database, run.cohort):
            return _load_locked(run, settings, driver, batch_size, progress, on_batch, workers, t0)
    finally:
        if own:
            driver.close()


def _load_locked(run: GraphRun, settings: Neo4jSettings, driver: Driver, batch_size: int, progress: bool,
                 on_batch, workers: int, t0: float) -> LoadReport:
    cohort, load_id = run.cohort, load_id_of(run)
    node_types, edge_types = run.node_types(), run.edge_types()
    tables = ([_node_table(label, run.nodes(label)) for label in node_types]
              + [_edge_table(e, run.edges(e)) for e in edge_types])
    for t in tables:  # refuse a table whose columns are not identifiers before anything is written
        for c in t.df.columns:
            if c not in _RESERVED:
                assert_ident(c, f"column of {t.name} in {run.root}")
    params = {"cohort": cohort, "load_id": load_id, "sep": SEP}
    modes: dict[str, str] = {}
    # what may hold an older build's items: partly loaded tables, and labels/types the run lacks
    stale = [(True, _edge_pattern(e)) for e in S.EDGE_TYPES if e not in edge_types]
    stale += [(False, _node_pattern(label)) for label in S.NODE_TYPES if label not in node_types]
    # notifications off: counting a relationship type that does not exist yet is no news
    with driver.session(database=settings.database, notifications_min_severity="OFF") as session, \
            make_progress(progress) as bar:
        task = bar.add_task(f"load-neo4j {cohort}", total=sum(len(t.df) for t in tables))
        for t in tables:
            held, current = _held(session, t, params)
            mode = modes[t.name] = _mode(held, current, *t.expected())
            if mode == "skip":
                bar.advance(task, len(t.df))
            else:
                if t.is_edge:
                    _mark(session, t.name, params, complete=False)
                streams = [t.make(part, mode == "create", batch_size) for part in t.parts(batch_size, workers)]
                _write_streams(driver, settings.database, streams,
                               params, t.name, lambda k: bar.advance(task, k), on_batch)
                if t.is_edge:
                    _mark(session, t.name, params, complete=True)
            if mode == "merge" or held > current:
                stale.append((t.is_edge, t.pattern))
        stale_rels, stale_nodes = _delete_stale(session, stale, params)
    return LoadReport(cohort, load_id, {t.name: len(t.df) for t in tables if not t.is_edge},
                      {t.name: len(t.df) for t in tables if t.is_edge}, stale_nodes, stale_rels,
                      round(time.perf_counter() - t0, 3), modes)


def _write_streams(driver: Driver, database: str, streams: list[Iterator[_Batch]], params: dict, name: str,
                   advance: Callable[[int], None], on_batch) -> None:
    """Write each stream of batches in its own session and thread; the first error stops all."""
    stop = threading.Event()
    lock = threading.Lock()
    done = 0

    def committed(rows: int) -> None:
        nonlocal done
        with lock:
            done += rows
            advance(rows)
            if on_batch is not None:
                on_batch(name, done)

    def write(batches: Iterator[_Batch]) -> None:
        try:
            with driver.session(database=database, notifications_min_severity="OFF") as session, \
                    closing(_prefetched(batches)) as ahead:  # on an error, stop the prefetching thread now
                for b in ahead:
                    if stop.is_set():
                        return
                    written = session.execute_write(
                        lambda tx, b=b: tx.run(b.query, {**b.params, **params}).single()["n"])
                    if written < b.rows:  # the edge query's endpoint check failed
                        raise GraphoncError(f"{name}: a batch of {b.rows} rows refers to nodes that are not "
                                            "loaded (the run's node tables lack them)")
                    committed(b.rows)
        except BaseException:
            stop.set()
            raise

    if len(streams) == 1:
        write(streams[0])
        return
    with ThreadPoolExecutor(len(streams), thread_name_prefix=f"load-{name}") as pool:
        futures = [pool.submit(write, st) for st in streams]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:  # the first failure; the others stopped because of it
        raise errors[0]


def _delete_stale(session: Session, targets: list[tuple[bool, str]], params: dict) -> tuple[int, int]:
    """Remove what an older build of this cohort left (SIMILAR_TO write-back is kept).

    ``targets``: (is_edge, pattern). Relationships first, then nodes (detached), each in
    server-side batches so that a large older build needs no huge transaction.
    Returns (relationships, nodes) deleted.
    """
    deleted = {True: 0, False: 0}
    for is_edge, pattern in sorted(set(targets), key=lambda t: (not t[0], t[1])):
        q = (f"MATCH {pattern} WHERE x.load_id IS NULL OR x.load_id <> $load_id "  # validated pattern
             f"CALL (x) {{ {'DELETE' if is_edge else 'DETACH DELETE'} x }} IN TRANSACTIONS OF 10000 ROWS "
             "RETURN count(*) AS n")
        deleted[is_edge] += session.run(q, params).single()["n"]  # auto-commit: IN TRANSACTIONS needs it
    return deleted[True], deleted[False]


# ---------------------------------------------------------------------------------------------
# Write-back of model results


def _write_batches(driver: Driver, database: str, batches: Iterator[_Batch], params: dict) -> int:
    """Write ``batches`` one transaction each; the rows they wrote (the queries' ``n``)."""
    n = 0
    with driver.session(database=database) as session:
        for b in batches:
            n += session.execute_write(lambda tx, b=b: tx.run(b.query, {**b.params, **params}).single()["n"])
    return n


def write_patient_properties(driver: Driver, cohort: str, df: pd.DataFrame, *, database: str = "neo4j",
                             batch_size: int = 5_000) -> int:
    """Set properties on existing Patient nodes: ``df`` has ``id`` + one column per property.

    List-valued cells (an embedding) become Neo4j float lists; a missing value removes the
    property. Returns patients updated. The same batches as a load (:func:`_node_batches`, in
    ``MATCH`` mode: a patient the database does not hold is skipped), so every property name is
    held to :func:`assert_ident`.
    """
    return _write_batches(driver, database, _node_batches(S.PATIENT, df, "MATCH", batch_size),
                          {"cohort": cohort, "sep": SEP})


def write_similar(driver: Driver, cohort: str, pairs: pd.DataFrame, model: str, *, database: str = "neo4j",
                  batch_size: int = 10_000) -> int:
    """Replace ``SIMILAR_TO {score, rank, model}`` relationships of ``model`` for the query patients.

    ``pairs`` has columns src, dst, score, rank. Relationships of other models are kept.
    Returns relationships written; a pair whose patient the database does not hold is an error.
    """
    needed = {"src", "dst", "score", "rank"}
    if not needed <= set(pairs.columns):
        raise ValueError(f"pairs needs columns {sorted(needed)}, got {list(pairs.columns)}")
    delete = ("UNWIND $ids AS pid MATCH (:Patient {cohort: $cohort, id: pid})-[r:SIMILAR_TO {model: $model}]->() "
              "DELETE r")
    with driver.session(database=database) as session:
        srcs = sorted(set(pairs["src"]))
        for start in range(0, len(srcs), batch_size):
            session.execute_write(lambda tx, b=srcs[start:start + batch_size]: tx.run(
                delete, ids=b, cohort=cohort, model=model).consume())
    rows = pd.DataFrame({S.SRC: pairs["src"].to_numpy(dtype=object), S.DST: pairs["dst"].to_numpy(dtype=object),
                         "model": model, "score": pairs["score"].astype("float64").to_numpy(),
                         "rank": pairs["rank"].astype("int64").to_numpy()})
    n = _write_batches(driver, database, _edge_batches((S.PATIENT, SIMILAR_TO, S.PATIENT), rows, True, batch_size),
                       {"cohort": cohort, "sep": SEP})
    if n != len(rows):
        raise GraphoncError(f"SIMILAR_TO: {len(rows) - n} of {len(rows)} pairs name a patient the database does "
                            f"not hold for cohort {cohort!r}. Fix: load the run first (`graphonc load-neo4j`).")
    return n


def iter_counts(driver: Driver, cohort: str, database: str = "neo4j") -> Iterable[tuple[str, int]]:
    """(label or relationship type, count) of one cohort, for comparing with the run folder."""
    for label in S.NODE_TYPES:
        res = driver.execute_query(f"MATCH (n:{_label_ident(label)} {{cohort: $cohort}}) RETURN count(n) AS n",
                                   cohort=cohort, database_=database)
        yield label, res.records[0]["n"]
    for src, rel, dst in S.EDGE_TYPES:
        res = driver.execute_query(
            f"MATCH (:{_label_ident(src)} {{cohort: $cohort}})-[r:{_rel_ident(rel)}]->(:{_label_ident(dst)}) RETURN count(r) AS n",
            cohort=cohort, database_=database)
        yield S.edge_name((src, rel, dst)), res.records[0]["n"]
