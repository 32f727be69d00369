"""Export patient embeddings: Parquet, NumPy, a TensorBoard projector folder, or Neo4j (vector index).

``<run>/export/`` (each format in its own folder, written atomically)::

    parquet/embeddings.parquet    id, split, label, embedding (float32 list of length D); with copy
                                  number / structural variants in the run also cna_profiled,
                                  copy_number (["AR:AMP", …]), sv_profiled, fusions (["TMPRSS2::ERG", …])
    npy/embeddings.npy            (n, D) float32;  npy/ids.txt  one id per line, row order
    projector/                    tensors.tsv (n rows × D), metadata.tsv (header + n rows: id, label,
                                  predicted_label, risk, os_months, os_event, survival_status),
                                  projector_config.pbtxt (TensorBoard), projector_config.json
                                  (the standalone projector.tensorflow.org)
    neo4j/summary.json            what was written to Neo4j (no patient data)
    embeddings_<umap|tsne>.png    2-D map of the embeddings coloured by diagnosis label

``neo4j`` sets each Patient's embedding property (``--property``, default ``embedding``),
creates a vector index on it (cosine; :mod:`graphonc.store.vector_index`, where the index name
and property pass :func:`graphonc.identifiers.assert_ident`, since Cypher cannot take them as
parameters) and writes each patient's top-k FAISS neighbours as ``SIMILAR_TO {score, rank, model}`` (the
model name is a property value, sent as a parameter). ``db.index.vector.queryNodes`` then returns the same
neighbours as FAISS (Neo4j's score is ``(1 + cosine) / 2``).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from graphonc import layout as L
from graphonc.errors import GraphoncError
from graphonc.graph import lineage
from graphonc.graph import schema as S
from graphonc.graph.run import GraphRun, atomic_dir, atomic_file, write_parquet
from graphonc.search.index import PatientIndex, digest, embedding_matrix, load_index, normalised, read_embeddings
from graphonc.identifiers import assert_ident


FORMATS = ("parquet", "npy", "projector", "neo4j", "graphml", "gexf")
#: the formats of :func:`export_embeddings`; graphml/gexf export the graph (graphonc.export_network)
EMBEDDING_FORMATS = FORMATS[:4]
PROJECTIONS = ("umap", "tsne", "none")


def _metadata(run: GraphRun, emb: pd.DataFrame, model_dir: Path) -> pd.DataFrame:
    """Per embedding row: id, label, predicted_label, risk, os_months, os_event, survival_status."""
    p = run.nodes(S.PATIENT).set_index(S.ID)
    meta = pd.DataFrame({S.ID: emb[S.ID].to_numpy()})
    rows = p.reindex(meta[S.ID])
    meta["label"] = rows[L.LABEL].to_numpy() if L.LABEL in rows else None
    pred_path = model_dir / L.PREDICTIONS
    if pred_path.exists():
        pred = pd.read_parquet(pred_path).set_index(S.ID).reindex(meta[S.ID])
        meta["predicted_label"] = pred["predicted_label"].to_numpy() if "predicted_label" in pred else None
        meta["risk"] = pred["risk"].to_numpy()
    for c in (L.OS_MONTHS, L.OS_EVENT):
        meta[c] = pd.to_numeric(rows[c], errors="coerce").to_numpy() if c in rows else np.nan
    meta["survival_status"] = np.select([meta[L.OS_EVENT] == 1, meta[L.OS_EVENT] == 0], ["deceased", "alive"],
                                        "unknown")
    return meta


def _alteration_columns(run: GraphRun, ids: pd.Series) -> dict[str, list]:
    """Per patient in ``ids``: the profiled flag and list of calls of each alteration modality in the run."""
    p = run.nodes(S.PATIENT).set_index(S.ID).reindex(ids.to_numpy())
    types = set(run.edge_types())
    out: dict[str, list] = {}
    for flag, edge, name in (("cna_profiled", S.HAS_CNA, "copy_number"), ("sv_profiled", S.HAS_FUSION, "fusions")):
        if edge not in types:
            continue
        e = run.edges(edge)
        text = e[S.DST] + ":" + e["call"] if "call" in e.columns else e[S.DST]
        lists = pd.Series(text.to_numpy(), index=e[S.SRC].to_numpy()).groupby(level=0).agg(lambda v: sorted(v))
        out[flag] = p[flag].fillna(False).astype(bool).tolist() if flag in p else [None] * len(ids)
        out[name] = [lists.get(i, []) for i in ids]
    return out


def _tsv_cell(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    return re.sub(r"[\t\r\n]", " ", str(v))


@dataclass
class ExportResult:
    format: str
    folder: Path
    n: int
    dim: int
    files: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def export_embeddings(run_dir: Path, fmt: str, *, model_dir: Path | None = None, neo4j=None, k: int = 10,
                      model_name: str | None = None, index_name: str = "patient_embedding",
                      property_name: str = "embedding", device: str = "auto", check_sample: int = 100) -> ExportResult:
    """Export the model's patient embeddings (see module doc).

    ``neo4j``: :class:`Neo4jSettings` (default: from the environment); ``check_sample``: how
    many patients' ``queryNodes`` results are compared with FAISS after a Neo4j export.
    """
    if fmt not in EMBEDDING_FORMATS:
        raise GraphoncError(f"unknown export format {fmt!r}; expected one of {', '.join(EMBEDDING_FORMATS)}.")
    run = GraphRun.open(run_dir)
    mdir = run.layout.model_or(model_dir)
    emb = read_embeddings(run.root, mdir)  # refuses embeddings of another graph
    consumed = lineage.fingerprint(run.root, mdir / L.EMBEDDINGS, manifest=run.manifest)
    x = embedding_matrix(emb)
    meta = _metadata(run, emb, mdir)
    target = run.layout.export_dir(fmt)
    with atomic_dir(target) as tmp:
        if fmt == "parquet":
            out = pd.DataFrame({S.ID: emb[S.ID], "split": emb.get("split"), "label": meta["label"],
                                "embedding": list(x), **_alteration_columns(run, emb[S.ID])})
            write_parquet(out, tmp / L.EMBEDDINGS)
        elif fmt == "npy":
            np.save(tmp / "embeddings.npy", x)
            (tmp / "ids.txt").write_text("".join(f"{i}\n" for i in emb[S.ID]), encoding="utf-8")
        elif fmt == "projector":
            _projector(tmp, x, meta)
        else:
            details = to_neo4j(run, emb, neo4j, k=k, model_name=model_name or f"graphonc-{digest(emb[S.ID])}",
                               index_name=index_name, property_name=property_name, device=device,
                               check_sample=check_sample)
            (tmp / "summary.json").write_text(json.dumps(details, indent=2), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        lineage.record(tmp, "export", consumed, run_root=run.root, rerun=f"graphonc export --run {{run}} --format {fmt}")
    res = ExportResult(fmt, target, len(emb), x.shape[1], files)
    if fmt == "neo4j":
        res.details = details
    return res


def _projector(folder: Path, x: np.ndarray, meta: pd.DataFrame) -> None:
    np.savetxt(folder / "tensors.tsv", x, delimiter="\t", fmt="%.7g")
    cols = list(meta.columns)
    lines = ["\t".join(cols)] + ["\t".join(_tsv_cell(v) for v in row) for row in meta.itertuples(index=False)]
    (folder / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pbtxt = 'embeddings {\n  tensor_name: "patients"\n  tensor_path: "tensors.tsv"\n  metadata_path: "metadata.tsv"\n}\n'
    (folder / "projector_config.pbtxt").write_text(pbtxt, encoding="utf-8")
    (folder / "projector_config.json").write_text(json.dumps({"embeddings": [
        {"tensorName": "patients", "tensorShape": list(x.shape), "tensorPath": "tensors.tsv",
         "metadataPath": "metadata.tsv"}]}, indent=2), encoding="utf-8")


def read_projector(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """(tensors (n, D) float32, metadata) of a projector folder."""
    x = np.loadtxt(folder / "tensors.tsv", delimiter="\t", dtype=np.float32, ndmin=2)
    meta = pd.read_csv(folder / "metadata.tsv", sep="\t", dtype={S.ID: str, "label": str}, keep_default_na=False)
    return x, meta


# ----------------------------------------------------------------------------------- Neo4j


def patient_index(run: GraphRun, emb: pd.DataFrame, device: str = "auto") -> PatientIndex:
    """The run's saved index when it holds exactly ``emb``'s patients, else an exact one in memory."""
    try:
        index = load_index(run.root, device)
        if list(index.ids) != emb[S.ID].tolist():
            raise GraphoncError("stale index")
    except GraphoncError:  # no (fresh) saved index: an exact one in memory, same neighbours
        index = PatientIndex.build(embedding_matrix(emb), emb[S.ID], "flat", device=device)
    return index


def faiss_pairs(index: PatientIndex, k: int) -> pd.DataFrame:
    """Every indexed patient's top-k other patients: columns src, dst, score (cosine), rank (1..k)."""
    from graphonc.search.similar import neighbours_of_rows

    hits = neighbours_of_rows(index, np.arange(index.n), k)
    src = np.repeat(index.ids, hits.rows.shape[1])
    ok = hits.rows.ravel() >= 0
    return pd.DataFrame({"src": src[ok], "dst": index.ids[hits.rows.ravel()[ok]],
                         "score": hits.scores.ravel()[ok].astype(float),
                         "rank": np.tile(np.arange(1, hits.rows.shape[1] + 1), index.n)[ok]})


def to_neo4j(run: GraphRun, emb: pd.DataFrame, settings, *, k: int, model_name: str, index_name: str,
             property_name: str, device: str = "auto", check_sample: int = 100) -> dict:
    """Write embeddings, the vector index and SIMILAR_TO; return counts and the FAISS agreement."""
    from graphonc.store.neo4j_load import Neo4jSettings, write_patient_properties, write_similar
    from graphonc.store.vector_index import ensure_vector_index, patient_count, vector_query

    assert_ident(index_name, "vector index name")  # refused before anything is written
    assert_ident(property_name, "embedding property")
    settings = settings or Neo4jSettings.from_env()
    x = embedding_matrix(emb)
    index = patient_index(run, emb, device)
    t0 = time.perf_counter()
    with settings.driver() as driver:
        if patient_count(driver, settings.database, run.cohort) == 0:
            raise GraphoncError(f"Neo4j at {settings.uri} holds no Patient of cohort {run.cohort!r}. "
                                f"Fix: `graphonc load-neo4j {run.root}` first.")
        props = pd.DataFrame({S.ID: emb[S.ID], property_name: list(x.astype(np.float64))})
        n_props = write_patient_properties(driver, run.cohort, props, database=settings.database)
        index_name, action = ensure_vector_index(driver, settings.database, index_name, property_name, x.shape[1])
        pairs = faiss_pairs(index, k)
        n_rels = write_similar(driver, run.cohort, pairs, model_name, database=settings.database)
        # agreement of the Neo4j vector index with FAISS on a fixed sample of patients
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(emb), min(check_sample, len(emb)), replace=False))
        xn = normalised(x)
        overlap = []
        truth = pairs.groupby("src")["dst"].apply(list)
        for i in sample:
            pid = emb[S.ID].iloc[i]
            got = [d for d, _ in vector_query(driver, settings.database, run.cohort, index_name, xn[i], k, pid)]
            overlap.append(len(set(got) & set(truth.get(pid, []))) / k)
    return {"cohort": run.cohort, "uri": settings.uri, "database": settings.database, "patients_updated": n_props,
            "property": property_name, "dimensions": int(x.shape[1]), "vector_index": index_name,
            "vector_index_action": action, "similar_to_model": model_name, "k": k, "similar_to_written": n_rels,
            "faiss_index": index.kind, "overlap_at_k_vs_faiss": float(np.mean(overlap)) if overlap else None,
            "overlap_sample": len(sample), "seconds": round(time.perf_counter() - t0, 2)}


# ----------------------------------------------------------------------------------- 2-D map


def projection_plot(run_dir: Path, method: str = "umap", model_dir: Path | None = None, seed: int = 0,
                    max_points: int | None = 50_000) -> Path:
    """``<run>/export/embeddings_<method>.png``: UMAP or t-SNE of the embeddings coloured by label.

    More than ``max_points`` patients are subsampled (seeded) first: both methods are
    super-linear and a plot cannot show a million points anyway.
    """
    from graphonc.plots.search import embedding_map

    if method not in PROJECTIONS or method == "none":
        raise GraphoncError(f"unknown projection {method!r}; expected umap or tsne.")
    run = GraphRun.open(run_dir)
    mdir = run.layout.model_or(model_dir)
    emb = read_embeddings(run.root, mdir)
    if max_points is not None and len(emb) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(emb), max_points, replace=False))
        emb = emb.iloc[keep].reset_index(drop=True)
    meta = _metadata(run, emb, mdir)
    x = normalised(embedding_matrix(emb))
    if method == "umap":
        import umap

        xy = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed, n_jobs=1).fit_transform(x)
    else:
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca",
                  random_state=seed).fit_transform(x)
    target = run.layout.projection_plot(method)
    with atomic_file(target) as tmp:
        embedding_map(xy, meta["label"], tmp, title=f"{run.cohort}: patient embeddings ({method.upper()}, "
                      f"n={len(emb):,}, {x.shape[1]}-d), coloured by diagnosis label")
    return target
