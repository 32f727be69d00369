"""The prostate run's copy-number and fusion relationships in a real Neo4j server."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from graphonc.graph import schema as S
from graphonc.store.cypher_files import CypherFile
from graphonc.store.neo4j_load import load_run

from conftest import drop_cohorts

pytestmark = [pytest.mark.neo4j, pytest.mark.slow]
CYPHER = Path(__file__).resolve().parents[1] / "cypher"


@pytest.fixture()
def prostate_loaded(neo4j_settings, prostate_run):
    """The prostate cohort loaded for this test only (test_neo4j_store loads it itself, from empty)."""
    load_run(prostate_run, neo4j_settings, batch_size=5000)
    yield prostate_run
    drop_cohorts(neo4j_settings, [prostate_run.cohort])


def test_prostate_load_holds_cna_and_fusions(neo4j_settings, prostate_loaded):
    prostate_run = prostate_loaded
    cohort, db = prostate_run.cohort, neo4j_settings.database
    cna, fus = prostate_run.edges(S.HAS_CNA), prostate_run.edges(S.HAS_FUSION)
    with neo4j_settings.driver() as drv:
        rows = drv.execute_query(
            "MATCH (:Patient {cohort: $c})-[r:HAS_CNA]->(g:Gene {cohort: $c}) RETURN r.call AS call, r.value AS value, "
            "count(*) AS n", c=cohort, database_=db).records
        got = {(r["call"], r["value"]): r["n"] for r in rows}
        assert got == cna.groupby(["call", "value"]).size().to_dict()
        ar = drv.execute_query("MATCH (p:Patient {cohort: $c})-[:HAS_CNA {call: 'AMP'}]->(:Gene {cohort: $c, id: 'AR'}) "
                               "RETURN collect(p.id) AS ids", c=cohort, database_=db).records[0]["ids"]
        assert set(ar) == set(cna.loc[(cna[S.DST] == "AR") & (cna["call"] == "AMP"), S.SRC])
        rec = drv.execute_query(
            "MATCH (f:Fusion {cohort: $c, id: 'TMPRSS2::ERG'}) "
            "OPTIONAL MATCH (f)-[:FUSION_PARTNER]->(g:Gene) WITH f, collect(g.id) AS genes "
            "MATCH (p:Patient)-[:HAS_FUSION]->(f) RETURN f.n_patients AS n, genes, count(p) AS carriers",
            c=cohort, database_=db).records[0]
        assert sorted(rec["genes"]) == ["ERG", "TMPRSS2"]
        assert rec["n"] == rec["carriers"] == (fus[S.DST] == "TMPRSS2::ERG").sum()
        n = drv.execute_query("MATCH (:Patient {cohort: $c})-[r:HAS_FUSION]->(:Fusion) RETURN count(r) AS n",
                              c=cohort, database_=db).records[0]["n"]
        assert n == len(fus)
        profiled = drv.execute_query("MATCH (p:Patient {cohort: $c}) RETURN sum(toInteger(p.cna_profiled)) AS n",
                                     c=cohort, database_=db).records[0]["n"]
        assert profiled == prostate_run.nodes(S.PATIENT)["cna_profiled"].sum()
        # the shipped query: patients sharing alterations with one carrier of an AR amplification
        me = sorted(ar)[0]
        cf = CypherFile.read(CYPHER / "patients_sharing_alterations.cypher")
        cols, out = cf.run(drv, cf.bind({"cohort": cohort, "patient_id": me, "limit": "100000"}))
        res = pd.DataFrame(out, columns=cols).set_index("patient")
    mine_cna = set(zip(cna.loc[cna[S.SRC] == me, S.DST], cna.loc[cna[S.SRC] == me, "call"]))
    mine_fus = set(fus.loc[fus[S.SRC] == me, S.DST])
    expect = {}
    for pid, g, c in zip(cna[S.SRC], cna[S.DST], cna["call"]):
        if pid != me and (g, c) in mine_cna:
            expect[pid] = expect.get(pid, 0) + 1
    for pid, f in zip(fus[S.SRC], fus[S.DST]):
        if pid != me and f in mine_fus:
            expect[pid] = expect.get(pid, 0) + 1
    assert res["n_shared"].to_dict() == expect and len(expect) >= len(ar) - 1
