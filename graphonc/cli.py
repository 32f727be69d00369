"""The ``graphonc`` command line: thin Typer wrappers, one plain function per stage.

Errors a user can fix (:class:`graphonc.errors.GraphoncError`) print as one line and exit
with code 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import logging
import warnings
from enum import Enum
from pathlib import Path

import typer
from rich.logging import RichHandler
from rich.table import Table

from graphonc.cli_common import Settings, err_console, handles_errors, out_console, settings_of
from graphonc.errors import GraphoncError
from graphonc.radiomics.cli import radiomics_app

app = typer.Typer(help="graphonc: patient-similarity graphs for oncology.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors; no progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    ctx.obj = Settings(verbose=verbose, quiet=quiet, debug=debug)
    # torch_geometric imports torch.jit.script at import time; the deprecation is not the user's business
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True,
                        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=debug)])
    for noisy in ("numexpr", "neo4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # server notifications (e.g. "property vaf does not exist" on a cohort without VAFs) are noise here
    logging.getLogger("neo4j.notifications").setLevel(logging.ERROR)


def _counts_table(manifest: dict) -> Table:
    t = Table(title=f"run: cohort {manifest['cohort']}")
    t.add_column("kind")
    t.add_column("type")
    t.add_column("count", justify="right")
    for label, n in sorted(manifest["counts"]["nodes"].items()):
        t.add_row("node", label, f"{n:,}")
    for edge, n in sorted(manifest["counts"]["edges"].items()):
        t.add_row("edge", edge, f"{n:,}")
    return t


class Store(str, Enum):
    parquet = "parquet"
    neo4j = "neo4j"


@app.command("build-graph")
@handles_errors
def build_graph_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="Cohort config YAML, e.g. configs/metabric.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write, e.g. runs/metabric."),
    store: Store = typer.Option(Store.parquet, "--store", help="parquet (the run folder only) or neo4j "
                                "(the run folder, then loaded into Neo4j: see load-neo4j)."),
    batch_size: int = typer.Option(100_000, "--batch-size", help="Rows per Neo4j transaction."),
    workers: int = typer.Option(2, "--workers", min=1, help="Concurrent Neo4j write streams per large table."),
) -> None:
    """Build the heterogeneous patient graph of a cohort into a run folder (Parquet)."""
    from graphonc.graph.build import build_run

    settings = settings_of(ctx)
    manifest = build_run(config, out, progress=settings.progress)
    if not settings.quiet:
        out_console.print(_counts_table(manifest))
        out_console.print(f"wrote {out} in {manifest['build_seconds']:.1f} s")
    if store is Store.neo4j:
        _load_neo4j(settings, out, batch_size, workers)


def _load_neo4j(settings: Settings, run: Path, batch_size: int, workers: int) -> None:
    from graphonc.graph.run import GraphRun
    from graphonc.store.neo4j_load import Neo4jSettings, load_run

    neo = Neo4jSettings.from_env()
    report = load_run(GraphRun.open(run), neo, batch_size=batch_size, progress=settings.progress, workers=workers)
    if not settings.quiet:
        out_console.print(f"loaded cohort {report.cohort!r} into {neo.uri} (database {neo.database}): "
                          f"{sum(report.nodes.values()):,} nodes, {sum(report.relationships.values()):,} "
                          f"relationships in {report.seconds:.1f} s; removed {report.deleted_stale_nodes:,} "
                          f"stale nodes and {report.deleted_stale_relationships:,} stale relationships")


@app.command("load-neo4j")
@handles_errors
def load_neo4j_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="A run folder built by build-graph."),
    batch_size: int = typer.Option(100_000, "--batch-size", help="Rows per transaction."),
    workers: int = typer.Option(2, "--workers", min=1, help="Concurrent Neo4j write streams per large table."),
) -> None:
    """Load a run folder into Neo4j (idempotent; NEO4J_URI/USER/PASSWORD/DATABASE, default the local server)."""
    _load_neo4j(settings_of(ctx), run, batch_size, workers)


@app.command("info")
@handles_errors
def info_cmd(ctx: typer.Context, run: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Show what a run folder holds: node and edge counts, pathway filtering, build details."""
    from graphonc.graph.run import GraphRun

    r = GraphRun.open(run)
    m = r.manifest
    out_console.print(_counts_table(m))
    pw = Table(title="pathways (kept = touch at least one mutated gene)")
    for col in ("source", "sets", "dropped_by_size", "dropped_no_mutated_gene", "kept"):
        pw.add_column(col, justify="left" if col == "source" else "right")
    for src, s in sorted(m.get("stats", {}).get("pathways", {}).items()):
        pw.add_row(src, *(f"{s[k]:,}" for k in ("sets", "dropped_by_size", "dropped_no_mutated_gene", "kept")))
    if pw.row_count:
        out_console.print(pw)
    out_console.print(f"graphonc {m['graphonc_version']}, config {m.get('config_file')} "
                      f"(sha256 {m['config_hash'][:12]}), built {m['built_at']} in {m['build_seconds']:.1f} s")


@app.command("train")
@handles_errors
def train_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder built by build-graph."),
    config: Path = typer.Option(None, "--config", "-c", help="Config whose model: section to use "
                                "(default: the one the run was built from)."),
    epochs: int = typer.Option(None, "--epochs", help="Override the maximum number of epochs."),
    device: str = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda."),
    tune: bool = typer.Option(False, "--tune", help="Choose hyper-parameters first by nested CV inside the "
                              "training patients, within model.tune_budget_s seconds (see --tune-budget)."),
    tune_budget: float = typer.Option(None, "--tune-budget", help="Seconds for --tune (default model.tune_budget_s)."),
) -> None:
    """Train the GNN (diagnosis + survival) and write embeddings, predictions and plots into <run>/model."""
    from graphonc.model.stages import train_stage

    settings = settings_of(ctx)
    m = train_stage(run, config, progress=settings.progress, tune=tune, epochs=epochs, device=device,
                    tune_budget_s=tune_budget)
    if not settings.quiet:
        t = Table(title=f"validation metrics (best epoch {m['best_epoch']}, {m['n_validation']} held-out patients)")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k, v in m["validation"].items():
            t.add_row(k, f"{v:.3f}")
        out_console.print(t)
        if m["at_chance"]:
            err_console.print(f"warning: the {', '.join(m['at_chance'])} head(s) stayed at chance on the validation "
                              "patients (flagged in metrics.json); try --tune")
        out_console.print(f"wrote {run / 'model'} in {m['train_seconds']:.0f} s on {m['device']}")


def _print_table(title: str, table, first: str = "metric") -> None:
    """Metrics down, models across (a handful of models fit a terminal's width, nine metrics did not)."""
    import pandas as pd

    t = Table(title=title)
    t.add_column(first)
    for name in table.index:
        t.add_column(str(name), justify="right")
    for c in table.columns:
        t.add_row(c, *("" if pd.isna(v) else str(v) for v in table[c]))
    out_console.print(t)


@app.command("evaluate")
@handles_errors
def evaluate_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder built by build-graph."),
    folds: int = typer.Option(5, "--folds", "-k", help="Number of patient-level stratified folds."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Repeated stratified CV: this many shuffles."),
    folds_file: Path = typer.Option(None, "--folds-file", help="CSV with columns patient_id, fold (and optionally "
                                    "repeat) to use instead of --folds/--repeats; every run writes its own."),
    config: Path = typer.Option(None, "--config", "-c", help="Config whose model: section to use."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also run the baselines."),
    epochs: int = typer.Option(None, "--epochs", help="Override the maximum number of epochs."),
    with_expression_derived: bool = typer.Option(None, "--with-expression-derived/--without-expression-derived",
                                                 help="Sensitivity row: add clinical.expression_derived columns "
                                                 "to every model's inputs."),
    after_diagnosis: bool = typer.Option(None, "--after-diagnosis/--at-diagnosis", help="Let every model see "
                                         "treatments and after-diagnosis columns (default: model.at_diagnosis)."),
    tune: bool = typer.Option(False, "--tune", help="Tune the GNN/MLP by nested CV inside each training fold."),
) -> None:
    """Leakage-free (repeated) k-fold CV of the GNN, an MLP without the graph, and the baselines; writes <run>/eval."""
    from graphonc.model.stages import evaluate_stage

    settings = settings_of(ctx)
    at_diagnosis = None if after_diagnosis is None else not after_diagnosis
    table = evaluate_stage(run, folds, config, baselines, progress=settings.progress, repeats=repeats,
                           folds_file=folds_file, tune=tune, epochs=epochs,
                           with_expression_derived=with_expression_derived, at_diagnosis=at_diagnosis)
    _print_table("cross-validation (mean ± sd over folds × repeats)", table)
    if (run / "eval" / "comparison.md").exists():
        out_console.print((run / "eval" / "comparison.md").read_text(encoding="utf-8"), markup=False)
    out_console.print(f"wrote {run / 'eval'}")


@app.command("embed")
@handles_errors
def embed_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="The run the model was trained on."),
    patients: Path = typer.Option(..., "--patients", "-p", help="New patients: a cBioPortal study folder or a "
                                  "clinical table (build-graph input formats)."),
    mutations: Path = typer.Option(None, "--mutations", help="Long mutation table (with a clinical table)."),
    model: Path = typer.Option(None, "--model", help="Trained model folder (default <run>/model)."),
    config: Path = typer.Option(None, "--config", "-c", help="The run's config, if the run does not record it."),
    out: Path = typer.Option(None, "--out", "-o", help="Write embeddings/predictions Parquet files here."),
) -> None:
    """Embed and score patients the model has never seen, without retraining (inductive)."""
    from graphonc.model.embed import embed_patients, write_embedded

    emb = embed_patients(run, patients, model_dir=model, mutations=mutations, config_path=config)
    if out is not None:
        write_embedded(emb, out)
    if settings_of(ctx).quiet:
        return
    pred = emb.predictions()
    unmatched = emb.unmatched.set_index("id").sum(axis=1) if len(emb.unmatched.columns) > 1 else None
    t = Table(title=f"{len(emb.ids)} new patient(s) embedded ({emb.embeddings.shape[1]}-d)")
    for c in ("patient", "risk", *(["predicted", "p"] if emb.classes else []), "unattached links"):
        t.add_column(c, justify="left" if c in ("patient", "predicted") else "right")
    for _, r in pred.head(50).iterrows():
        label = [r["predicted_label"], f"{r[f'p_{r.predicted_label}']:.2f}"] if emb.classes else []
        t.add_row(r["id"], f"{r['risk']:.3f}", *label, str(int(unmatched[r["id"]])) if unmatched is not None else "0")
    out_console.print(t)
    if len(pred) > 50:
        out_console.print(f"... {len(pred) - 50} more" + (f" in {out}" if out else " (use --out to save all)"))
    elif out is not None:
        out_console.print(f"wrote {out}")


@app.command("explain")
@handles_errors
def explain_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run with a trained model."),
    patient: str = typer.Option(..., "--patient", "-p", help="Patient id."),
    model: Path = typer.Option(None, "--model", help="Trained model folder (default <run>/model)."),
    n_top: int = typer.Option(8, "--top", "-n", help="Rows per target and kind."),
    steps: int = typer.Option(32, "--steps", help="Integrated-gradients steps (more = closer to exact)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Which clinical features, mutations, genes, pathways and treatments drove a patient's risk and diagnosis."""
    import json

    from graphonc.model.explain import explain_patient, top

    e = explain_patient(run, patient, model_dir=model, steps=steps)
    t = top(e.table, n_top)
    if as_json:
        doc = {"patient": e.patient, "predicted_label": e.predicted_label, "outputs": e.outputs,
               "attributions": json.loads(t.to_json(orient="records"))}
        print(json.dumps(doc, indent=1))
        return
    for target, out in e.outputs.items():
        what = "risk (log hazard)" if target == "risk" else f"log p({e.predicted_label})"
        tab = Table(title=f"{patient}: {what} {out['value']:.3f} vs baseline {out['baseline']:.3f} "
                          f"(IG gap {out['delta']:.3f})")
        for c in ("kind", "name", "value", "linked", "attribution"):
            tab.add_column(c, justify="right" if c == "attribution" else "left")
        for _, r in t[t["target"] == target].iterrows():
            tab.add_row(r["kind"], str(r["name"]), "" if r["value"] is None else str(r["value"]),
                        "yes" if r["linked"] else "", f"{r['attribution']:+.3f}")
        out_console.print(tab)


neo4j_app = typer.Typer(help="Run the bundled local Neo4j 5.26 Community server (127.0.0.1 only).",
                        no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")

_DATA_DIR = typer.Option(None, "--data-dir", help="Server folder (default $GRAPHONC_NEO4J_DATA_DIR or "
                         "~/.local/share/graphonc/neo4j).")
_BOLT = typer.Option(None, "--bolt-port", help="Bolt port (default $GRAPHONC_NEO4J_BOLT_PORT or 7687).")
_HTTP = typer.Option(None, "--http-port", help="HTTP/Browser port (default $GRAPHONC_NEO4J_HTTP_PORT or 7474).")


def _server(command: str, data_dir: Path | None, bolt: int | None, http: int | None) -> None:
    from graphonc.store import neo4j_server as ns

    argv = [command]
    for flag, value in (("--data-dir", data_dir), ("--bolt-port", bolt), ("--http-port", http)):
        if value is not None:
            argv += [flag, str(value)]
    raise typer.Exit(ns.main(argv))


@neo4j_app.command("start")
def neo4j_start(data_dir: Path = _DATA_DIR, bolt_port: int = _BOLT, http_port: int = _HTTP) -> None:
    """Fetch the jars with Maven (once), start the server, wait until Bolt answers."""
    _server("start", data_dir, bolt_port, http_port)


@neo4j_app.command("stop")
def neo4j_stop(data_dir: Path = _DATA_DIR) -> None:
    """Stop the server cleanly (harmless when it is not running)."""
    _server("stop", data_dir, None, None)


@neo4j_app.command("status")
def neo4j_status(data_dir: Path = _DATA_DIR) -> None:
    """Say whether the server runs and where (exit code 3 when it does not)."""
    _server("status", data_dir, None, None)


@neo4j_app.command("resolve")
def neo4j_resolve() -> None:
    """Only fetch the Neo4j jars with Maven (setup and CI)."""
    _server("resolve", None, None, None)


cypher_app = typer.Typer(help="Run the parameterised Cypher files in cypher/.", no_args_is_help=True)
app.add_typer(cypher_app, name="cypher")


@cypher_app.command("run")
@handles_errors
def cypher_run(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A .cypher file, e.g. cypher/patient_profile.cypher."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, repeatable (values are sent as "
                                    "query parameters, never pasted into the query)."),
    as_json: bool = typer.Option(False, "--json", help="Print rows as JSON instead of a table."),
) -> None:
    """Run one Cypher file against Neo4j and print its result."""
    import json

    from graphonc.store.cypher_files import CypherFile, parse_param_args
    from graphonc.store.neo4j_load import Neo4jSettings

    cf = CypherFile.read(file)
    params = cf.bind(parse_param_args(param))
    neo = Neo4jSettings.from_env()
    with neo.driver() as driver:
        cols, rows = cf.run(driver, params, database=neo.database)
    if as_json:
        out_console.print_json(json.dumps([dict(zip(cols, r)) for r in rows], default=str))
        return
    t = Table(title=cf.title, caption=f"{len(rows)} row(s)")
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    out_console.print(t)



# ------------------------------------------------------------------ similar-patient search


class IndexKind(str, Enum):
    auto = "auto"
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"
    ivfpq = "ivfpq"


class SearchDevice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


@app.command("index")
@handles_errors
def index_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder with a trained model (graphonc train)."),
    kind: IndexKind = typer.Option(IndexKind.auto, "--type", help="auto: exact flat below 50k patients, HNSW "
                                   "up to 2M, IVF-PQ above; or force one."),
    device: SearchDevice = typer.Option(SearchDevice.auto, "--device", help="auto: the GPU when CUDA and faiss-gpu "
                                        "are there (HNSW always on the CPU)."),
    hnsw_m: int = typer.Option(32, "--hnsw-m", help="HNSW links per node."),
    ef_search: int = typer.Option(128, "--ef-search", help="HNSW search beam width."),
    nlist: int = typer.Option(None, "--nlist", help="IVF cells (default about sqrt(n))."),
    nprobe: int = typer.Option(16, "--nprobe", help="IVF cells visited per query."),
    source: str = typer.Option("model", "--from", help="model: the trained model's embeddings; features: the "
                               "encoded clinical (+ radiomic) features, for cohorts without outcomes to train on."),
) -> None:
    """Build the FAISS index of the patient embeddings (cosine) into <run>/index."""
    from graphonc.search.index import IndexParams, build_index

    idx = build_index(run, kind.value, IndexParams(hnsw_m=hnsw_m, ef_search=ef_search, nlist=nlist, nprobe=nprobe),
                      device.value, source=source)
    if not settings_of(ctx).quiet:
        out_console.print(f"indexed {idx.n:,} patients ({idx.dim}-d, {idx.kind}, searching on {idx.device}) in "
                          f"{idx.meta['build_seconds']:.2f} s; wrote {run / 'index'}")


def _similar_table(res) -> Table:
    q = res.query
    title = (f"{len(res.neighbours)} patients most similar to {q.id}{' (new)' if q.new else ''}"
             f" — label {q.label or '?'}, {len(q.mutations)} mutations, index {res.index_kind}")
    t = Table(title=title, caption=f"filters: {res.filters.describe()}", show_lines=True)
    for c in ("#", "patient", "score", "label", "shared mutations / genes (role)", "shared pathways",
              "clinical", "treatments", "outcome"):
        t.add_column(c, justify="right" if c in ("#", "score") else "left", overflow="fold")
    for n in res.neighbours:
        shared = "\n".join([*n.shared_mutations, *(f"{g['gene']} ({g['role']})" for g in n.shared_genes)]) or "-"
        pw = f"{n.n_shared_pathways}" + (f": {n.shared_pathways[0]['name']}" if n.shared_pathways else "")
        n_same, n_all = len(n.clinical_similar), len(n.clinical_similar) + len(n.clinical_different)
        diff = ", ".join(f"{c['column']} {c['query']}→{c['neighbour']}" for c in n.clinical_different)
        clinical = f"{n_same}/{n_all} alike" + (f"; differ: {diff}" if diff else "")
        if n.shared_phenotypes:
            clinical += "\nradiomics: " + ", ".join(p["phenotype"] for p in n.shared_phenotypes)
        t.add_row(str(n.rank), n.id, f"{n.score:.3f}", str(n.label or "?"), shared, pw, clinical,
                  ", ".join(n.treatments) or "-", n.status)
    return t


@app.command("similar")
@handles_errors
def similar_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder with an index (graphonc index)."),
    patient: list[str] = typer.Option([], "--patient", "-p", help="Patient id of the run (repeatable)."),
    new_patient: Path = typer.Option(None, "--new-patient", help="New patient(s) in the build-graph input formats: "
                                     "a cBioPortal study folder or a clinical table (see --mutations)."),
    mutations: Path = typer.Option(None, "--mutations", help="Long mutation table that goes with a clinical "
                                   "table given to --new-patient."),
    k: int = typer.Option(10, "-k", help="Number of neighbours."),
    same_label: bool = typer.Option(False, "--same-label", help="Only neighbours with the query's diagnosis label."),
    treated_with: list[str] = typer.Option([], "--treated-with", help="Only neighbours who received this "
                                           "treatment (a Treatment node id; repeatable = all of them)."),
    alive_at: float = typer.Option(None, "--alive-at", help="Only neighbours known alive at this many months."),
    device: SearchDevice = typer.Option(SearchDevice.auto, "--device", help="Where FAISS searches."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """The k most similar patients, the reasons (shared mutations, genes, pathways, clinical) and their outcomes."""
    import json

    from graphonc.search.similar import parse_filters, similar_new_patients, similar_patients

    if bool(patient) == (new_patient is not None):
        raise GraphoncError("give either --patient ID (repeatable) or --new-patient FILE.")
    filters = parse_filters(same_label, treated_with, alive_at)
    if new_patient is not None:
        results = similar_new_patients(run, new_patient, k, filters, mutations=mutations, device=device.value)
    else:
        results = similar_patients(run, patient, k, filters, device=device.value)
    if as_json:
        out_console.print_json(json.dumps([r.to_dict() for r in results], default=str))
        return
    for r in results:
        out_console.print(_similar_table(r))
        if len(r.neighbours) < k:
            out_console.print(f"only {len(r.neighbours)} patients pass the filters ({r.filters.describe()})")


app.add_typer(radiomics_app, name="radiomics")  # graphonc radiomics extract|phenotype|assign


class ExportFormat(str, Enum):
    parquet = "parquet"
    npy = "npy"
    projector = "projector"
    neo4j = "neo4j"


class Projection(str, Enum):
    umap = "umap"
    tsne = "tsne"
    none = "none"


@app.command("export")
@handles_errors
def export_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder with a trained model."),
    fmt: list[ExportFormat] = typer.Option(..., "--format", "-f", help="parquet | npy | projector (TensorBoard) | "
                                           "neo4j (property + vector index + SIMILAR_TO); repeatable."),
    plot: Projection = typer.Option(Projection.none, "--plot", help="Also write a UMAP or t-SNE PNG coloured by "
                                    "diagnosis label (<run>/export/embeddings_<method>.png)."),
    k: int = typer.Option(10, "-k", help="neo4j: SIMILAR_TO neighbours per patient."),
    model_name: str = typer.Option(None, "--model-name", help="neo4j: the SIMILAR_TO model property "
                                   "(default graphonc-<hash of the patient ids>)."),
    index_name: str = typer.Option("patient_embedding", "--index-name", help="neo4j: vector index name."),
    property_name: str = typer.Option("embedding", "--property", help="neo4j: Patient property for the embedding."),
) -> None:
    """Export patient embeddings (Parquet, NumPy, TensorBoard projector, Neo4j vector index) into <run>/export."""
    from graphonc.export import export_embeddings, projection_plot

    settings = settings_of(ctx)
    for f in fmt:
        res = export_embeddings(run, f.value, k=k, model_name=model_name, index_name=index_name,
                                property_name=property_name)
        if not settings.quiet:
            out_console.print(f"{f.value}: {res.n:,} patients × {res.dim} → {res.folder} ({', '.join(res.files)})")
            if res.details:
                d = res.details
                out_console.print(f"  Neo4j {d['uri']}: {d['patients_updated']:,} Patient.{d['property']}, vector index "
                                  f"{d['vector_index']} ({d['vector_index_action']}), {d['similar_to_written']:,} "
                                  f"SIMILAR_TO {{model: {d['similar_to_model']!r}}}; overlap@{d['k']} of "
                                  f"db.index.vector.queryNodes with FAISS: {d['overlap_at_k_vs_faiss']:.3f} "
                                  f"({d['overlap_sample']} patients)")
    if plot is not Projection.none:
        path = projection_plot(run, plot.value)
        if not settings.quiet:
            out_console.print(f"wrote {path}")



@app.command("report")
@handles_errors
def report_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder with a model and an index."),
    patient: str = typer.Option(..., "--patient", "-p", help="Patient id of the run."),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default <run>/reports/<patient>.html)."),
    k: int = typer.Option(10, "-k", help="Number of neighbours."),
    same_label: bool = typer.Option(False, "--same-label", help="Only neighbours with the query's diagnosis label."),
    treated_with: list[str] = typer.Option([], "--treated-with", help="Only neighbours who received this treatment."),
    alive_at: float = typer.Option(None, "--alive-at", help="Only neighbours known alive at this many months."),
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Include the model's explanation "
                                 "(integrated gradients; the slowest part)."),
) -> None:
    """A self-contained HTML page for the tumour board: profile, neighbours with reasons, KM curves, treatments."""
    from graphonc.report.html import write_report
    from graphonc.search.similar import parse_filters

    path = write_report(run, patient, out, k=k, filters=parse_filters(same_label, treated_with, alive_at),
                        explain=explain)
    if not settings_of(ctx).quiet:
        out_console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")



@app.command("evaluate-similarity")
@handles_errors
def evaluate_similarity_cmd(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="A run folder built by build-graph."),
    folds: int = typer.Option(5, "--folds", help="Patient-level stratified folds (the same as graphonc evaluate)."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Repeated stratified CV: this many shuffles."),
    folds_file: Path = typer.Option(None, "--folds-file", help="CSV with columns patient_id, fold (and optionally "
                                    "repeat), e.g. <run>/eval/folds.csv."),
    k: int = typer.Option(10, "-k", help="Neighbours per query."),
    method: list[str] = typer.Option([], "--method", "-m", help="gnn, mlp, knn_features, jaccard_genes, snf, random "
                                     "(repeatable; default all)."),
    subsample: int = typer.Option(None, "--subsample", help="Evaluate on a stratified subset of this many patients."),
    epochs: int = typer.Option(None, "--epochs", help="Override the GNN's maximum number of epochs."),
    reuse: bool = typer.Option(True, "--reuse/--retrain", help="Reuse the fold models of an earlier `evaluate` on "
                               "the same fold plan (<run>/eval) instead of training them again."),
) -> None:
    """Neighbour quality on held-out folds: subtype precision@k and C-index of the neighbour-mean risk, GNN vs baselines."""
    from graphonc.search.quality import METHODS, evaluate_similarity_stage

    res = evaluate_similarity_stage(run, folds, k, method or METHODS, subsample, progress=settings_of(ctx).progress,
                                    repeats=repeats, folds_file=folds_file, reuse=reuse, epochs=epochs)
    _print_table(f"similarity on held-out folds, k={k} (mean ± sd over folds × repeats)", res.summary)
    if res.reused:
        out_console.print(f"reused the fold models of {run / 'eval'} for: {', '.join(res.reused)}")
    out_console.print(f"wrote {run / 'similarity'}")


if __name__ == "__main__":  # pragma: no cover
    app()
