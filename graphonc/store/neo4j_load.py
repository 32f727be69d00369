"""Load a run folder into Neo4j and write model results back, with the official driver.

* Every node carries ``cohort``; uniqueness constraints on ``(cohort, id)`` per label are
  created first, so two cohorts share one database without mixing.
* Rows go in batches through ``UNWIND $rows AS row MERGE …``: never a query per row, and
  values are always parameters. Labels and relationship types are interpolated only from
  the fixed schema in :mod:`graphonc.graph.schema`, never from data.
* Idempotent: MERGE on keys, and every loaded node/relationship gets ``load_id`` (a hash
  of the run's table contents). After a complete load, nodes and relationships of the
  cohort with another ``load_id`` (left from an older build) are deleted. Loading the same
  run twice leaves the database identical; a load interrupted midway is simply rerun.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
from neo4j import Driver, GraphDatabase

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun
from graphonc.progress import make_progress

log = logging.getLogger("graphonc")

SIMILAR_TO = "SIMILAR_TO"
_ALLOWED_LABELS = set(S.NODE_TYPES)
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

    def driver(self) -> Driver:
        if not self.password:
            raise GraphoncError("no Neo4j password: set NEO4J_PASSWORD (or GRAPHONC_NEO4J_PASSWORD_FILE), "
                                "or start the bundled server with `graphonc neo4j start`.")
        return GraphDatabase.driver(self.uri, auth=(self.user, self.password))


def _label(label: str) -> str:
    if label not in _ALLOWED_LABELS:
        raise ValueError(f"unknown node label {label!r}")
    return label


def _rel(rel: str) -> str:
    if rel not in _ALLOWED_RELS:
        raise ValueError(f"unknown relationship type {rel!r}")
    return rel


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


def frame_rows(df: pd.DataFrame, key_cols: list[str]) -> list[dict]:
    """Rows as ``{key…, props: {…}}`` dicts with missing values dropped (Neo4j has no nulls)."""
    prop_cols = [c for c in df.columns if c not in key_cols]
    keys = {c: df[c].astype(object).tolist() for c in key_cols}
    props = {c: df[c].astype(object).tolist() for c in prop_cols}
    out = []
    for i in range(len(df)):
        row = {c: keys[c][i] for c in key_cols}
        p = {}
        for c in prop_cols:
            v = _clean(props[c][i])
            if v is not None:
                p[c] = v
        row["props"] = p
        out.append(row)
    return out


def _batches(rows: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


def schema_statements() -> list[str]:
    """Constraints (cohort, id) per label and a cohort index per label; all IF NOT EXISTS."""
    stmts = []
    for label in S.NODE_TYPES:
        low = label.lower()
        stmts.append(f"CREATE CONSTRAINT {low}_key IF NOT EXISTS FOR (n:{label}) REQUIRE (n.cohort, n.id) IS UNIQUE")
        stmts.append(f"CREATE INDEX {low}_load IF NOT EXISTS FOR (n:{label}) ON (n.load_id)")
    return stmts


def ensure_schema(driver: Driver, database: str) -> None:
    for stmt in schema_statements():
        driver.execute_query(stmt, database_=database)
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)


def load_id_of(run: GraphRun) -> str:
    """Content hash of the run's tables: equal runs get equal load ids."""
    blob = json.dumps(run.manifest["table_sha256"], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class LoadReport:
    cohort: str
    load_id: str
    nodes: dict[str, int]
    relationships: dict[str, int]
    deleted_stale_nodes: int
    deleted_stale_relationships: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.nodes.values()) + sum(self.relationships.values())


def load_run(run: GraphRun, settings: Neo4jSettings | None = None, *, batch_size: int = 10_000,
             progress: bool = False, driver: Driver | None = None,
             on_batch: Callable[[str, int], None] | None = None) -> LoadReport:
    """Load every node and edge table of ``run`` into Neo4j (idempotent; see module doc).

    Args:
        batch_size: rows per transaction.
        on_batch: called after each committed batch with (table name, rows so far); tests
            use it to interrupt a load midway.
    """
    settings = settings or Neo4jSettings.from_env()
    own = driver is None
    driver = driver or settings.driver()
    db = settings.database
    t0 = time.perf_counter()
    try:
        driver.verify_connectivity()
        ensure_schema(driver, db)
        cohort, load_id = run.cohort, load_id_of(run)
        nodes = {label: run.nodes(label) for label in run.node_types()}
        edges = {e: run.edges(e) for e in run.edge_types()}
        total = sum(len(v) for v in nodes.values()) + sum(len(v) for v in edges.values())
        with make_progress(progress) as bar:
            task = bar.add_task(f"load-neo4j {cohort}", total=total)
            for label, df in nodes.items():
                q = (f"UNWIND $rows AS row MERGE (n:{_label(label)} {{cohort: $cohort, id: row.id}}) "
                     "SET n += row.props, n.load_id = $load_id")
                _run_batches(driver, db, q, frame_rows(df, [S.ID]), batch_size, cohort, load_id,
                             lambda k: bar.advance(task, k), label, on_batch)
            for (src, rel, dst), df in edges.items():
                q = (f"UNWIND $rows AS row MATCH (a:{_label(src)} {{cohort: $cohort, id: row.src}}) "
                     f"MATCH (b:{_label(dst)} {{cohort: $cohort, id: row.dst}}) "
                     f"MERGE (a)-[r:{_rel(rel)}]->(b) SET r += row.props, r.load_id = $load_id")
                _run_batches(driver, db, q, frame_rows(df, [S.SRC, S.DST]), batch_size, cohort, load_id,
                             lambda k: bar.advance(task, k), S.edge_name((src, rel, dst)), on_batch)
        stale_rels, stale_nodes = _delete_stale(driver, db, cohort, load_id)
        return LoadReport(cohort, load_id, {k: len(v) for k, v in nodes.items()},
                          {S.edge_name(k): len(v) for k, v in edges.items()}, stale_nodes, stale_rels,
                          round(time.perf_counter() - t0, 3))
    finally:
        if own:
            driver.close()


def _run_batches(driver: Driver, db: str, query: str, rows: list[dict], size: int, cohort: str, load_id: str,
                 advance: Callable[[int], None], name: str, on_batch) -> None:
    done = 0
    with driver.session(database=db) as session:
        for batch in _batches(rows, size):
            session.execute_write(lambda tx, b=batch: tx.run(query, rows=b, cohort=cohort, load_id=load_id).consume())
            done += len(batch)
            advance(len(batch))
            if on_batch is not None:
                on_batch(name, done)


def _delete_stale(driver: Driver, db: str, cohort: str, load_id: str) -> tuple[int, int]:
    """Remove what an older build of this cohort left (SIMILAR_TO write-back is kept)."""
    rels = nodes = 0
    for src, rel, _ in S.EDGE_TYPES:
        res = driver.execute_query(
            f"MATCH (:{_label(src)} {{cohort: $cohort}})-[r:{_rel(rel)}]->() WHERE r.load_id <> $load_id DELETE r "
            "RETURN count(*) AS n", cohort=cohort, load_id=load_id, database_=db)
        rels += res.records[0]["n"]
    for label in S.NODE_TYPES:
        res = driver.execute_query(
            f"MATCH (n:{_label(label)} {{cohort: $cohort}}) WHERE n.load_id <> $load_id DETACH DELETE n "
            "RETURN count(*) AS n", cohort=cohort, load_id=load_id, database_=db)
        nodes += res.records[0]["n"]
    return rels, nodes


# ---------------------------------------------------------------------------------------------
# Write-back of model results


def write_patient_properties(driver: Driver, cohort: str, df: pd.DataFrame, *, database: str = "neo4j",
                             batch_size: int = 5_000) -> int:
    """Set properties on existing Patient nodes: ``df`` has ``id`` + one column per property.

    List-valued cells (an embedding) become Neo4j float lists. Returns patients updated.
    """
    rows = frame_rows(df, [S.ID])
    q = ("UNWIND $rows AS row MATCH (p:Patient {cohort: $cohort, id: row.id}) SET p += row.props "
         "RETURN count(p) AS n")
    n = 0
    with driver.session(database=database) as session:
        for batch in _batches(rows, batch_size):
            n += session.execute_write(lambda tx, b=batch: tx.run(q, rows=b, cohort=cohort).single()["n"])
    return n


def write_similar(driver: Driver, cohort: str, pairs: pd.DataFrame, model: str, *, database: str = "neo4j",
                  batch_size: int = 10_000) -> int:
    """Replace ``SIMILAR_TO {score, rank, model}`` relationships of ``model`` for the query patients.

    ``pairs`` has columns src, dst, score, rank. Relationships of other models are kept.
    Returns relationships written.
    """
    needed = {"src", "dst", "score", "rank"}
    if not needed <= set(pairs.columns):
        raise ValueError(f"pairs needs columns {sorted(needed)}, got {list(pairs.columns)}")
    srcs = sorted(set(pairs["src"]))
    delete = ("UNWIND $ids AS pid MATCH (:Patient {cohort: $cohort, id: pid})-[r:SIMILAR_TO {model: $model}]->() "
              "DELETE r")
    create = ("UNWIND $rows AS row MATCH (a:Patient {cohort: $cohort, id: row.src}) "
              "MATCH (b:Patient {cohort: $cohort, id: row.dst}) "
              "CREATE (a)-[r:SIMILAR_TO {model: $model, score: row.score, rank: row.rank}]->(b) RETURN count(r) AS n")
    rows = [{"src": s, "dst": d, "score": float(sc), "rank": int(rk)}
            for s, d, sc, rk in pairs[["src", "dst", "score", "rank"]].itertuples(index=False)]
    n = 0
    with driver.session(database=database) as session:
        for ids in _batches([{"id": s} for s in srcs], batch_size):
            session.execute_write(lambda tx, b=[x["id"] for x in ids]: tx.run(delete, ids=b, cohort=cohort,
                                                                               model=model).consume())
        for batch in _batches(rows, batch_size):
            n += session.execute_write(lambda tx, b=batch: tx.run(create, rows=b, cohort=cohort,
                                                                  model=model).single()["n"])
    return n


def iter_counts(driver: Driver, cohort: str, database: str = "neo4j") -> Iterable[tuple[str, int]]:
    """(label or relationship type, count) of one cohort, for comparing with the run folder."""
    for label in S.NODE_TYPES:
        res = driver.execute_query(f"MATCH (n:{_label(label)} {{cohort: $cohort}}) RETURN count(n) AS n",
                                   cohort=cohort, database_=database)
        yield label, res.records[0]["n"]
    for src, rel, dst in S.EDGE_TYPES:
        res = driver.execute_query(
            f"MATCH (:{_label(src)} {{cohort: $cohort}})-[r:{_rel(rel)}]->(:{_label(dst)}) RETURN count(r) AS n",
            cohort=cohort, database_=database)
        yield S.edge_name((src, rel, dst)), res.records[0]["n"]
