"""graphonc from Python: every stage of the command line as a documented function.

The command line (:mod:`graphonc.cli`, :mod:`graphonc.cli_radiomics`) is a thin layer over this
module: it parses options, calls one function here and prints the result. A notebook calls the
same functions and gets the same objects back::

    from graphonc import api

    api.build_graph("configs/metabric.yaml", "runs/metabric")
    api.train("runs/metabric", epochs=50)
    api.index("runs/metabric")
    [res] = api.similar("runs/metabric", ["MB-0002"], k=5)
    res.to_dict()["neighbours"][0]["id"]

Each function is a thin wrapper over the stage function named in its docstring (same defaults,
same files written, same errors: :class:`graphonc.errors.GraphoncError` for input a user can
fix). Heavy libraries (torch, FAISS, pyradiomics) load only when a function that needs them
runs, so ``import graphonc.api`` is cheap. Layer: below the command line and the web service,
above search/report/export/store (docs/developer.md, "Layering").
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from graphonc.errors import GraphoncError

if TYPE_CHECKING:  # the types of the results, without importing the numerical stack
    import pandas as pd

    from graphonc.export import ExportResult
    from graphonc.export_network import NetworkExport
    from graphonc.graph.run import GraphRun
    from graphonc.model.embed import EmbeddedPatients
    from graphonc.model.explain import Explanation
    from graphonc.radiomics.extract import ExtractResult
    from graphonc.radiomics.phenotypes import PhenotypeModel
    from graphonc.radiomics.features import PatientFeatures
    from graphonc.radiomics_config import PhenotypeSpec
    from graphonc.search.index import PatientIndex
    from graphonc.search.quality import SimilarityEval
    from graphonc.search.similar import Filters, SimilarResult
    from graphonc.store.neo4j_load import LoadReport, Neo4jSettings
    from graphonc.store.neo4j_server import Neo4jServerConfig, ServerStatus

PathLike = str | Path

#: Formats of :func:`export`: the embeddings (first four) and the graph (last two).
EMBEDDING_FORMATS = ("parquet", "npy", "projector", "neo4j")
GRAPH_FORMATS = ("graphml", "gexf")


# ---------------------------------------------------------------------------------- the graph


def build_graph(config: PathLike, out: PathLike, *, force: bool = False, progress: bool = False) -> dict:
    """Build a cohort's heterogeneous patient graph into the run folder ``out`` (Parquet).

    Wraps :func:`graphonc.graph.build.build_run`. ``out`` must be new, empty or a graphonc run;
    a run holding later stages (model/, index/, …) is only replaced with ``force``. Returns the
    run's manifest (``counts``, ``patient_columns``, ``build_seconds``, …).

    Example::

        m = api.build_graph("configs/metabric.yaml", "runs/metabric")
        m["counts"]["nodes"]["Patient"]
    """
    from graphonc.graph.build import build_run

    return build_run(Path(config), Path(out), progress=progress, force=force)


def open_run(run: PathLike) -> GraphRun:
    """The run folder ``run`` (:class:`graphonc.graph.run.GraphRun`: manifest, tables on demand, ``.layout``).

    Example::

        r = api.open_run("runs/metabric")
        r.nodes("Patient").shape, r.layout.predictions
    """
    from graphonc.graph.run import GraphRun

    return GraphRun.open(run)


@dataclass
class RunInfo:
    """What ``graphonc info`` shows: the manifest, and the graph statistics as plain-text tables
    ``(title, header, rows)`` when asked for."""

    run: GraphRun
    manifest: dict
    graph_stats: list[tuple[str, list[str], list[list[str]]]] | None = None
    #: the header names of graph_stats whose cells are numbers (right-aligned in a terminal)
    numeric_columns: frozenset[str] = frozenset()


def info(run: PathLike, *, graph_stats: bool = False) -> RunInfo:
    """A run's counts, pathway filtering and build details (its manifest); with ``graph_stats``,
    degrees, hub genes and pathways, components and isolated patients
    (:func:`graphonc.graph.stats.of_run`).

    Example::

        api.info("runs/metabric").manifest["counts"]["edges"]
    """
    r = open_run(run)
    if not graph_stats:
        return RunInfo(r, r.manifest)
    from graphonc.graph import stats

    return RunInfo(r, r.manifest, stats.summary_rows(stats.of_run(r)), frozenset(stats.NUMERIC_COLUMNS))


# ---------------------------------------------------------------------------------- Neo4j


def neo4j_settings() -> Neo4jSettings:
    """The Neo4j connection from the environment (NEO4J_URI/USER/PASSWORD or a 0600 password file,
    NEO4J_DATABASE; default the local server of ``graphonc neo4j start``)."""
    from graphonc.store.neo4j_load import Neo4jSettings

    return Neo4jSettings.from_env()


def load_neo4j(run: PathLike, *, settings: Neo4jSettings | None = None, batch_size: int = 100_000,
               workers: int = 2, progress: bool = False) -> LoadReport:
    """Load a run folder into Neo4j, idempotently (:func:`graphonc.store.neo4j_load.load_run`).

    ``settings`` default to :func:`neo4j_settings`. Returns the load report (nodes and
    relationships per type, stale ones removed, seconds).

    Example::

        rep = api.load_neo4j("runs/metabric")
        sum(rep.nodes.values())
    """
    from graphonc.store.neo4j_load import load_run

    return load_run(open_run(run), settings or neo4j_settings(), batch_size=batch_size, progress=progress,
                    workers=workers)


def neo4j_server_config(**given) -> Neo4jServerConfig:
    """The local server's settings: the ``given`` ones that are not None (data_dir, bolt_port,
    http_port, heap, pagecache, cache_dir), else the environment's, else the built-in defaults."""
    from graphonc.store import neo4j_server as ns

    return ns.Neo4jServerConfig(**{k: v for k, v in given.items() if v is not None})


def neo4j_version() -> str:
    """The Neo4j version graphonc runs and loads into."""
    from graphonc.store import neo4j_server as ns

    return ns.NEO4J_VERSION


def neo4j_user() -> str:
    """The user the local server's generated password belongs to."""
    from graphonc.store import neo4j_server as ns

    return ns.USER


def neo4j_jars_ready(cfg: Neo4jServerConfig) -> bool:
    """Whether the server's jars are in the Maven cache already (else the first start fetches them)."""
    from graphonc.store import neo4j_server as ns

    return ns.jars_ready(cfg.cache_dir)


def neo4j_start(cfg: Neo4jServerConfig, *, timeout: float = 120) -> ServerStatus:
    """Fetch the jars (once), start the local Neo4j server and wait until Bolt answers.

    Example::

        st = api.neo4j_start(api.neo4j_server_config(bolt_port=7690, http_port=7477))
        st.bolt_uri
    """
    from graphonc.store import neo4j_server as ns

    return ns.start(cfg, timeout=timeout)


def neo4j_stop(cfg: Neo4jServerConfig, *, timeout: float = 60) -> bool:
    """Stop the local server cleanly; False when it was not running."""
    from graphonc.store import neo4j_server as ns

    return ns.stop(cfg, timeout=timeout)


def neo4j_status(cfg: Neo4jServerConfig) -> ServerStatus | None:
    """The running local server, or None."""
    from graphonc.store import neo4j_server as ns

    return ns.status(cfg)


def neo4j_resolve(cfg: Neo4jServerConfig) -> Path:
    """Only fetch the server's jars with Maven; returns their folder."""
    from graphonc.store import neo4j_server as ns

    return ns.resolve_jars(cfg.cache_dir)


@dataclass
class CypherResult:
    """The answer of a Cypher file: its title, column names and rows."""

    title: str
    columns: list[str]
    rows: list[list]


def cypher_run(file: PathLike, params: dict[str, str] | Sequence[str] = (), *,
               settings: Neo4jSettings | None = None) -> CypherResult:
    """Run one parameterised file of ``cypher/`` against Neo4j (values are sent as parameters,
    never pasted into the query). ``params``: ``{name: text}`` or ``["name=text", …]``.

    Example::

        api.cypher_run("cypher/patient_profile.cypher", {"cohort": "metabric", "patient": "MB-0002"}).rows
    """
    from graphonc.store.cypher_files import CypherFile, parse_param_args

    cf = CypherFile.read(Path(file))
    bound = cf.bind(dict(params) if isinstance(params, dict) else parse_param_args(list(params)))
    neo = settings or neo4j_settings()
    with neo.driver() as driver:
        cols, rows = cf.run(driver, bound, database=neo.database)
    return CypherResult(cf.title, list(cols), [list(r) for r in rows])


# ---------------------------------------------------------------------------------- the model


def train(run: PathLike, *, config: PathLike | None = None, epochs: int | None = None, device: str | None = None,
          tune: bool = False, tune_budget_s: float | None = None, progress: bool = False, **model_options) -> dict:
    """Train the GNN (diagnosis + survival) and write ``<run>/model/`` (weights, embeddings,
    predictions, metrics, plots) (:func:`graphonc.model.stages.train_stage`).

    The ``model:`` section comes from ``config``, else from the config the run was built from;
    ``epochs``, ``device`` (auto, cpu, cuda) and ``model_options`` (any ``model:`` key, e.g.
    ``hidden=32``) override it. ``tune``: choose hyper-parameters first by nested CV inside the
    training patients, within ``tune_budget_s`` seconds (default ``model.tune_budget_s``).
    Returns the metrics (``validation``, ``best_epoch``, ``device``, ``at_chance``, …).

    Example::

        m = api.train("runs/metabric", epochs=25, hidden=32, embedding_dim=16)
        m["validation"]["c_index"]
    """
    from graphonc.model.stages import train_stage

    return train_stage(Path(run), Path(config) if config is not None else None, progress=progress, tune=tune,
                       epochs=epochs, device=device, tune_budget_s=tune_budget_s, **model_options)


def evaluate(run: PathLike, *, folds: int = 5, repeats: int = 1, folds_file: PathLike | None = None,
             config: PathLike | None = None, baselines: bool = True, epochs: int | None = None, tune: bool = False,
             with_expression_derived: bool | None = None, at_diagnosis: bool | None = None,
             progress: bool = False, **model_options) -> pd.DataFrame:
    """Leakage-free (repeated) patient-level stratified CV of the GNN, an MLP without the graph and
    the baselines on the same folds; writes ``<run>/eval/`` (summary, per-fold metrics, the folds
    used as ``folds.csv``, and each model against the best baseline with a paired 95% interval)
    (:func:`graphonc.model.stages.evaluate_stage`). ``folds_file``: a CSV ``patient_id, fold``
    (optionally ``repeat``) instead of ``folds``/``repeats``. ``with_expression_derived`` adds the
    config's expression-derived columns to every model (a sensitivity row); ``at_diagnosis=False``
    lets every model see treatments. Returns the summary table (models × metrics).

    Example::

        api.evaluate("runs/metabric", folds=3, repeats=2, baselines=False, epochs=20)
    """
    from graphonc.model.stages import evaluate_stage

    return evaluate_stage(Path(run), folds, Path(config) if config is not None else None, baselines,
                          progress=progress, repeats=repeats,
                          folds_file=Path(folds_file) if folds_file is not None else None, tune=tune, epochs=epochs,
                          with_expression_derived=with_expression_derived, at_diagnosis=at_diagnosis,
                          **model_options)


def embed(run: PathLike, patients: PathLike, *, mutations: PathLike | None = None, model: PathLike | None = None,
          config: PathLike | None = None, out: PathLike | None = None) -> EmbeddedPatients:
    """Embed and score patients the model has never seen, without retraining
    (:func:`graphonc.model.embed.embed_patients`); with ``out``, also write their embeddings and
    predictions there (a folder graphonc did not write is refused before any work).

    ``patients``: a cBioPortal study folder or a clinical table (with ``mutations``, a long
    mutation table). Returns the embedded patients (``.ids``, ``.embeddings``, ``.predictions()``).

    Example::

        emb = api.embed("runs/metabric", "new/clinical.tsv", mutations="new/mutations.tsv")
        emb.predictions()[["id", "risk"]]
    """
    from graphonc.graph.outputs import claim_dir
    from graphonc.model.embed import embed_patients, write_embedded

    if out is not None:
        claim_dir(Path(out), "embed")  # before the work: never over a folder graphonc did not write
    emb = embed_patients(Path(run), Path(patients), model_dir=_path(model), mutations=_path(mutations),
                         config_path=_path(config))
    if out is not None:
        write_embedded(emb, Path(out), Path(run))
    return emb


def explain(run: PathLike, patient: str, *, model: PathLike | None = None, steps: int = 32,
            top: int | None = None) -> Explanation:
    """Which clinical features, mutations, genes, pathways and treatments drove a patient's risk and
    diagnosis: integrated gradients (:func:`graphonc.model.explain.explain_patient`). With ``top``,
    the attribution table keeps the ``top`` largest per target and kind.

    Example::

        e = api.explain("runs/metabric", "MB-0002", top=5)
        e.outputs["risk"]["value"], e.table.head()
    """
    from graphonc.model.explain import explain_patient, top as top_rows

    e = explain_patient(Path(run), patient, model_dir=_path(model), steps=steps)
    return replace(e, table=top_rows(e.table, top)) if top is not None else e


# ---------------------------------------------------------------------------------- search


def index(run: PathLike, *, kind: str | None = None, device: str | None = None, hnsw_m: int | None = None,
          ef_search: int | None = None, nlist: int | None = None, nprobe: int | None = None,
          source: str = "model") -> PatientIndex:
    """Build the FAISS index (cosine) of the patient embeddings into ``<run>/index/``
    (:func:`graphonc.search.index.build_index`).

    Options left None come from the ``search:`` section of the run's config, else the defaults
    (``kind`` auto: exact flat below 50k patients, HNSW up to 2M, IVF-PQ above). ``source``:
    ``model`` (the trained model's embeddings) or ``features`` (the encoded input features, for
    cohorts without outcomes to train on).

    Example::

        idx = api.index("runs/metabric")
        idx.n, idx.kind
    """
    from graphonc.search.index import build_index, index_settings

    kind_, device_, params = index_settings(Path(run), kind=kind, device=device, hnsw_m=hnsw_m,
                                            ef_search=ef_search, nlist=nlist, nprobe=nprobe)
    return build_index(Path(run), kind_, params, device_, source=source)


def filters(*, same_label: bool = False, treated_with: Sequence[str] = (), alive_at: float | None = None,
            has_outcome: bool = False) -> Filters:
    """Neighbour filters for :func:`similar` and :func:`report` (checked: e.g. ``alive_at`` >= 0).

    Example::

        api.filters(same_label=True, alive_at=60)
    """
    from graphonc.search.similar import parse_filters

    return parse_filters(same_label, list(treated_with), alive_at, has_outcome)


def similar(run: PathLike, patients: Sequence[str] = (), *, new_patient: PathLike | None = None,
            mutations: PathLike | None = None, k: int = 10, same_label: bool = False,
            treated_with: Sequence[str] = (), alive_at: float | None = None, has_outcome: bool = False,
            device: str | None = None) -> list[SimilarResult]:
    """The ``k`` most similar patients of each query, with the reasons (shared mutations, genes,
    pathways, clinical) and their outcomes (:func:`graphonc.search.similar.similar_patients`).

    Give run patient ids (``patients``) or ``new_patient`` (build-graph input formats: a
    cBioPortal study folder or a clinical table, with ``mutations``), not both. Returns one
    result per query (``.neighbours``, ``.to_dict()``).

    Example::

        [res] = api.similar("runs/metabric", ["MB-0002"], k=5, same_label=True)
        [(n.id, round(n.score, 3)) for n in res.neighbours]
    """
    from graphonc.search.similar import similar_new_patients, similar_patients

    if isinstance(patients, str):
        patients = [patients]
    if bool(patients) == (new_patient is not None):
        raise GraphoncError("give either --patient ID (repeatable) or --new-patient FILE.")
    f = filters(same_label=same_label, treated_with=treated_with, alive_at=alive_at, has_outcome=has_outcome)
    if new_patient is not None:
        return similar_new_patients(Path(run), Path(new_patient), k, f, mutations=_path(mutations),
                                    device=device or "auto")
    return similar_patients(Path(run), list(patients), k, f, device=device or "auto")


def plain_reasons(neighbour) -> str:
    """A neighbour's reasons as one plain-text line (as the report and the terminal show them)."""
    from graphonc.report.html import plain_reasons as reasons

    return reasons(neighbour)


def evaluate_similarity(run: PathLike, *, folds: int = 5, repeats: int = 1, folds_file: PathLike | None = None,
                        k: int = 10, methods: Sequence[str] | None = None, subsample: int | None = None,
                        epochs: int | None = None, reuse: bool = True, progress: bool = False) -> SimilarityEval:
    """Neighbour quality on held-out folds, GNN vs baselines: subtype precision@k and C-index of the
    neighbour-mean risk; writes ``<run>/similarity/``
    (:func:`graphonc.search.quality.evaluate_similarity_stage`). ``methods``: gnn, mlp,
    knn_features, jaccard_genes, snf, random (default all). ``reuse``: take the fold models of an
    earlier :func:`evaluate` on the same fold plan instead of training them again. Returns
    ``.summary`` (methods × metrics) and more.

    Example::

        api.evaluate_similarity("runs/metabric", folds=3, methods=["knn_features", "random"]).summary
    """
    from graphonc.search.quality import METHODS, evaluate_similarity_stage

    return evaluate_similarity_stage(Path(run), folds, k, list(methods or METHODS), subsample, progress=progress,
                                     repeats=repeats, folds_file=Path(folds_file) if folds_file is not None else None,
                                     reuse=reuse, epochs=epochs)


# ---------------------------------------------------------------------------------- report and export


def report(run: PathLike, patient: str, *, out: PathLike | None = None, k: int = 10, same_label: bool = False,
           treated_with: Sequence[str] = (), alive_at: float | None = None, has_outcome: bool = False,
           explain: bool = True) -> Path:
    """Write the tumour-board page of a run patient: profile, neighbours with reasons, KM curves,
    treatments (:func:`graphonc.report.html.write_report`). Default ``out``:
    ``<run>/reports/<encoded id>.html``; an existing file is only replaced when graphonc wrote it.
    Returns the path written. (A new patient's page: ``graphonc report --new-patient``, served by
    :mod:`graphonc.serve`.)

    Example::

        api.report("runs/metabric", "MB-0002", k=10, explain=False)
    """
    from graphonc.report.html import write_report

    f = filters(same_label=same_label, treated_with=treated_with, alive_at=alive_at, has_outcome=has_outcome)
    return write_report(Path(run), patient, _path(out), k=k, filters=f, explain=explain)


def export(run: PathLike, fmt: str, *, k: int = 10, model_name: str | None = None,
           index_name: str = "patient_embedding", property_name: str = "embedding", patients: Sequence[str] = (),
           neighbourhood: str | None = None, hops: int = 2, with_similar: bool = False, out: PathLike | None = None,
           progress: bool = False) -> ExportResult | NetworkExport:
    """Export the patient embeddings (``parquet``, ``npy``, ``projector``, ``neo4j``: property, vector
    index and SIMILAR_TO; :func:`graphonc.export.export_embeddings`) into ``<run>/export/<format>/``,
    or the graph (``graphml``, ``gexf``, optionally only ``patients`` or a ``neighbourhood``;
    :func:`graphonc.export_network.export_graph`).

    Example::

        api.export("runs/metabric", "npy").files
        api.export("runs/metabric", "graphml", neighbourhood="Gene:PIK3CA", hops=1).path
    """
    if fmt in GRAPH_FORMATS:
        from graphonc.export_network import export_graph

        return export_graph(Path(run), fmt, patients=list(patients), neighbourhood=neighbourhood, hops=hops,
                            with_similar=with_similar, k=k, model_name=model_name, out=_path(out),
                            progress=progress)
    if fmt not in EMBEDDING_FORMATS:
        raise GraphoncError(f"unknown export format {fmt!r}; expected one of "
                            f"{', '.join(EMBEDDING_FORMATS + GRAPH_FORMATS)}.")
    from graphonc.export import export_embeddings

    return export_embeddings(Path(run), fmt, k=k, model_name=model_name, index_name=index_name,
                             property_name=property_name)


def projection_plot(run: PathLike, method: str = "umap") -> Path:
    """``<run>/export/embeddings_<method>.png``: a UMAP or t-SNE map of the embeddings coloured by
    diagnosis label (:func:`graphonc.export.projection_plot`).

    Example::

        api.projection_plot("runs/metabric", "tsne")
    """
    from graphonc.export import projection_plot as plot

    return plot(Path(run), method)


# ---------------------------------------------------------------------------------- radiomics


def radiomics_extract(manifest: PathLike, out: PathLike, *, params: PathLike = "configs/radiomics.yaml",
                      workers: int | None = None, scheduler: str | None = None, cache: PathLike | None = None,
                      use_cache: bool = True, on_mismatch: str | None = None, tolerance_mm: float | None = None,
                      progress: bool = False, cases_per_task: int | None = None) -> tuple[ExtractResult, dict]:
    """Extract pyradiomics features for every case of a manifest (parallel, cached, resumable)
    into the Parquet table ``out`` (:func:`graphonc.radiomics.extract.extract_run`).
    ``on_mismatch`` (resample, reject) and ``tolerance_mm`` override the params file's geometry.
    ``cases_per_task``: cases per Dask task (None: automatic, 1 for small batches).
    Returns (result: ``.features``, ``.errors``, ``.counts``; the report written beside ``out``).

    Example::

        res, rep = api.radiomics_extract("hn1/manifest.csv", "runs/hn1_features.parquet", workers=2)
        res.counts
    """
    from graphonc.radiomics.extract import extract_run
    from graphonc.radiomics_config import load_params

    geometry = None
    if on_mismatch is not None or tolerance_mm is not None:
        geometry = load_params(params).geometry.model_copy()
        if on_mismatch is not None:
            geometry.on_mismatch = on_mismatch
        if tolerance_mm is not None:
            geometry.tolerance_mm = tolerance_mm
    return extract_run(Path(manifest), Path(params), Path(out), workers=workers, cache_dir=_path(cache),
                       use_cache=use_cache, geometry=geometry, progress=progress, scheduler=scheduler,
                       cases_per_task=cases_per_task)


def radiomics_import(features_csv: PathLike, out: PathLike, *, config: PathLike | None = None,
                     id_column: str | None = None, roi_column: str | None = None, roi: Sequence[str] = (),
                     aggregate: str | None = None) -> PatientFeatures:
    """Instead of images: read a table of precomputed features (mapped by ``config``'s
    ``radiomics.features`` section or by the options) and write it as the Parquet table ``out``.

    Example::

        pf = api.radiomics_import("features.csv", "runs/features.parquet", id_column="patient", roi=["GTV"])
        pf.values.shape
    """
    from graphonc.radiomics.features import read_feature_table, write_feature_table
    from graphonc.radiomics.stages import feature_spec, load_phenotype_settings

    template = load_phenotype_settings(Path(config))[1] if config is not None else None
    spec = feature_spec(Path(features_csv), template.features if template is not None else None)
    update = {k: v for k, v in (("patient_id", id_column), ("roi_column", roi_column),
                                ("roi_values", list(roi) or None), ("aggregate", aggregate))
              if v is not None}
    pf = read_feature_table(spec.model_copy(update=update))
    write_feature_table(pf, Path(out))
    return pf


def radiomics_phenotype(features: PathLike, out: PathLike, *, config: PathLike = "configs/radiomics.yaml",
                        **overrides) -> tuple[PhenotypeModel, PhenotypeSpec]:
    """Harmonise features and cluster patients into radiomic phenotypes (k by BIC or silhouette);
    write the model, phenotypes, assignments and report into the folder ``out``
    (:func:`graphonc.radiomics.stages.phenotype_run`). ``overrides``: any phenotype setting
    (batch_column, harmonization, method, k_min, k_max, seed); ``method="kmeans"`` selects k by
    silhouette unless ``selection`` is given. Returns (model, the settings used).

    Example::

        model, spec = api.radiomics_phenotype("runs/hn1_features.parquet", "runs/hn1_phenotypes", k_max=4)
        model.phenotype_table()
    """
    from pydantic import ValidationError

    from graphonc.radiomics.features import read_feature_table
    from graphonc.radiomics.stages import feature_spec, load_phenotype_settings, phenotype_run
    from graphonc.radiomics_config import PhenotypeSpec

    spec, cohort = load_phenotype_settings(Path(config))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("method") == "kmeans" and "selection" not in overrides:
        overrides["selection"] = "silhouette"
    try:
        spec = PhenotypeSpec.model_validate({**spec.model_dump(), **overrides})
    except ValidationError as exc:
        raise GraphoncError(f"invalid phenotype option: {exc.errors()[0]['msg']}") from None
    pf = read_feature_table(feature_spec(Path(features), cohort.features if cohort is not None else None))
    model, _ = phenotype_run(pf, spec, Path(out))
    return model, spec


def radiomics_assign(model: PathLike, features: PathLike, out: PathLike, *,
                     config: PathLike | None = None) -> pd.DataFrame:
    """Assign new patients to existing phenotypes with the saved transform (no refitting); write
    Parquet ``out`` (:func:`graphonc.radiomics.stages.assign_run`). Returns the assignments.

    Example::

        api.radiomics_assign("runs/hn1_phenotypes", "new_features.parquet", "runs/new_assign.parquet")
    """
    from graphonc.radiomics.stages import assign_run, feature_spec, load_phenotype_settings

    cohort = load_phenotype_settings(Path(config))[1] if config is not None else None
    return assign_run(Path(model), feature_spec(Path(features), cohort.features if cohort is not None else None),
                      Path(out))


def _path(p: PathLike | None) -> Path | None:
    return Path(p) if p is not None else None
