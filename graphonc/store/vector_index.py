"""Neo4j's vector index of patient embeddings: create it, query it, count what it covers.

Every Cypher statement that the embedding export (:func:`graphonc.export.to_neo4j`) sends lives
here, in store/, beside the loader: the index and property names pass
:func:`graphonc.identifiers.assert_ident` (they cannot be parameters), everything else is a
parameter.
"""
from __future__ import annotations

import logging

import numpy as np

from graphonc.errors import GraphoncError
from graphonc.graph import schema as S
from graphonc.identifiers import assert_ident

log = logging.getLogger("graphonc")

#: Neo4j's largest vector dimension.
MAX_VECTOR_DIM = 4096


def patient_count(driver, database: str, cohort: str) -> int:
    """How many Patient nodes of ``cohort`` the database holds."""
    return int(driver.execute_query("MATCH (p:Patient {cohort: $cohort}) RETURN count(p) AS n",
                                    cohort=cohort, database_=database).records[0]["n"])


def vector_index_statement(index_name: str, property_name: str, dim: int) -> str:
    """``CREATE VECTOR INDEX`` for Patient.<property> (cosine). Name and property pass
    :func:`assert_ident`; the dimension is checked and sent with the index configuration as
    the parameter ``$options`` (see :func:`vector_index_options`).

    Quantisation is switched off: Neo4j 5.23+ otherwise stores int8-quantised vectors, whose
    scores are off by up to ~0.02 and reorder close neighbours relative to exact search.
    """
    vector_index_options(dim)
    return (f"CREATE VECTOR INDEX {assert_ident(index_name, 'vector index name')} IF NOT EXISTS "
            f"FOR (p:Patient) ON (p.{assert_ident(property_name, 'embedding property')}) OPTIONS $options")


def vector_index_options(dim: int) -> dict:
    """The ``$options`` of :func:`vector_index_statement`: ``dim`` dimensions, cosine, no quantisation."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= int(dim) <= MAX_VECTOR_DIM:
        raise GraphoncError(f"vector dimension must be an integer in 1..{MAX_VECTOR_DIM}, got {dim!r}")
    return {"indexConfig": {"vector.dimensions": int(dim), "vector.similarity_function": "cosine",
                            "vector.quantization.enabled": False}}


def ensure_vector_index(driver, database: str, index_name: str, property_name: str, dim: int) -> tuple[str, str]:
    """Make sure a cosine vector index of ``dim`` dimensions covers Patient.<property>; wait until online.

    Neo4j allows one vector index per label and property: an index there under another name
    with the same configuration is kept (and its name returned); one with another dimension or
    similarity, or ``index_name`` on another property, is dropped and recreated.
    Returns (the index name in use, "created" | "kept" | "recreated").
    """
    stmt = vector_index_statement(index_name, property_name, dim)
    recs = driver.execute_query(
        "SHOW VECTOR INDEXES YIELD name, labelsOrTypes, properties, options "
        "WHERE name = $name OR (labelsOrTypes = [$label] AND properties = [$prop]) "
        "RETURN name, labelsOrTypes, properties, options", name=index_name, label=S.PATIENT, prop=property_name,
        database_=database).records
    action, name = "created", index_name
    for rec in recs:
        cfg = (rec["options"] or {}).get("indexConfig", {})
        same = (rec["labelsOrTypes"] == [S.PATIENT] and rec["properties"] == [property_name]
                and int(cfg.get("vector.dimensions", -1)) == int(dim)
                and str(cfg.get("vector.similarity_function", "")).lower() == "cosine"
                and cfg.get("vector.quantization.enabled") is False)
        if same:
            action, name = "kept", rec["name"]
            if name != index_name:
                log.warning("Patient.%s already has the vector index %r with this configuration; using it",
                            property_name, name)
            break
        log.warning("vector index %r has another configuration; recreating it as %d-d cosine", rec["name"], dim)
        driver.execute_query(f"DROP INDEX {assert_ident(rec['name'], 'vector index name')} IF EXISTS",
                             database_=database)
        action = "recreated"
    if action != "kept":
        driver.execute_query(stmt, options=vector_index_options(dim), database_=database)
    driver.execute_query("CALL db.awaitIndex($name, 300)", name=name, database_=database)
    return name, action


def vector_query(driver, database: str, cohort: str, index_name: str, vector: np.ndarray, k: int,
                 exclude: str | None = None, fetch: int | None = None) -> list[tuple[str, float]]:
    """Neo4j vector-index neighbours of ``vector`` within ``cohort``: [(id, cosine)], best first.

    The index spans every cohort's Patients, so ``fetch`` (default 4k + 10) candidates are asked
    for and filtered to the cohort and away from ``exclude``. Neo4j's cosine score is
    ``(1 + cos) / 2``; it is mapped back to the cosine.
    """
    fetch = fetch or 4 * k + 10
    res = driver.execute_query(
        "CALL db.index.vector.queryNodes($index, $fetch, $vector) YIELD node, score "
        "WHERE node.cohort = $cohort AND node.id <> $exclude RETURN node.id AS id, score "
        "ORDER BY score DESC LIMIT $k",
        index=assert_ident(index_name, "vector index name"), fetch=int(fetch),
        vector=[float(v) for v in vector], cohort=cohort, exclude=exclude or "", k=int(k), database_=database)
    return [(r["id"], 2 * float(r["score"]) - 1) for r in res.records]
