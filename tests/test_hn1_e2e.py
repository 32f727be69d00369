"""End to end on HN1 (clinical + radiomic phenotypes, no mutations): build → train → index →
similar patients with their phenotype as a reason → new patients without images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import CONFIGS, DATA
from graphonc.graph import schema as S
from graphonc.graph.build import build_run
from graphonc.graph.run import GraphRun
from graphonc.model.embed import embed_patients
from graphonc.model.stages import train_stage
from graphonc.search.index import build_index
from graphonc.search.similar import similar_patients

pytestmark = pytest.mark.slow  # builds and trains HN1, then embeds new patients


@pytest.fixture(scope="module")
def hn1(tmp_path_factory) -> GraphRun:
    root = tmp_path_factory.mktemp("hn1") / "run"
    build_run(CONFIGS / "hn1.yaml", root)
    train_stage(root, epochs=8)
    build_index(root)
    return GraphRun.open(root)


def test_similar_patients_share_phenotypes_that_are_true_in_the_graph(hn1):
    ph = hn1.edges(S.HAS_PHENOTYPE)
    of = ph.groupby(S.SRC)[S.DST].agg(set)
    query = sorted(of.index)[0]
    (res,) = similar_patients(hn1.root, [query], k=10)
    assert len(res.neighbours) == 10 and query not in {n.id for n in res.neighbours}
    shared_any = False
    for n in res.neighbours:
        shared = {s["phenotype"] for s in n.shared_phenotypes}
        assert shared == of.get(query, set()) & of.get(n.id, set())  # a reason is a fact of the graph
        assert set(n.phenotypes) == of.get(n.id, set())
        shared_any |= bool(shared)
    assert shared_any  # with 5 phenotypes over 137 patients, some of 10 neighbours share one
    assert res.query.phenotypes and set(res.query.phenotypes) == of[query]


def test_new_patients_without_images_are_embedded_not_refused(hn1, tmp_path):
    """New patients given only as clinical rows are encoded as patients without imaging
    (radiomics_available = 0) rather than refused for lacking the rad_* columns."""
    clinical = pd.read_csv(DATA / "radiomics" / "hn1" / "HN_ClinicalData.csv")
    new = clinical.head(3).assign(id=lambda d: "NEW-" + d["id"].astype(str))
    new.to_csv(tmp_path / "new.csv", index=False)
    emb = embed_patients(hn1.root, tmp_path / "new.csv")
    assert emb.ids == new["id"].tolist()
    assert np.isfinite(emb.embeddings).all() and np.isfinite(emb.risk).all()
    assert emb.proba.shape == (3, 0)  # HN1 has no diagnosis label
