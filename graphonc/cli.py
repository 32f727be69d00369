"""The ``graphonc`` command line: thin Typer wrappers over :mod:`graphonc.api`, one per stage.

Each command parses its options (the shared ones are defined once in :mod:`graphonc.cli_common`),
calls one api function and prints the result; the stages themselves are reached only through
the api (``tests/test_api.py`` checks this module's imports).

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

from graphonc import api
from graphonc.cli_common import (ALIVE_AT_OPTION, BATCH_SIZE_OPTION, DEVICE_OPTION, EPOCHS_OPTION, FOLDS_FILE_OPTION,
                                 FOLDS_OPTION, HAS_OUTCOME_OPTION, JSON_OPTION, K_OPTION, MODEL_CONFIG_OPTION,
                                 MODEL_DIR_OPTION, MUTATIONS_OPTION, REPEATS_OPTION, RUN_OPTION, SAME_LABEL_OPTION,
                                 TRAIN_DEVICE_OPTION, TREATED_WITH_OPTION, WORKERS_OPTION, SearchDevice, Settings,
                                 TermSafeLogs, err_console, example, handles_errors, one_run, out_console,
                                 settings_of, term)
from graphonc.cli_radiomics import radiomics_app
from graphonc.errors import GraphoncError

app = typer.Typer(help="graphonc: patient-similarity graphs for oncology.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors; no progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads for torch, FAISS and BLAS "
                                "(default: the CPUs this process may use)."),
) -> None:
    from graphonc.threads import set_threads

    set_threads(threads)  # before any command imports torch/FAISS: they read it when they load
    ctx.obj = Settings(verbose=verbose, quiet=quiet, debug=debug)
    # torch_geometric imports torch.jit.script at import time; the deprecation is not the user's business
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=debug)
    handler.addFilter(TermSafeLogs())  # messages carry ids and file contents: shown, never acted on
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True, handlers=[handler])
    for noisy in ("numexpr", "neo4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # server notifications (e.g. "property vaf does not exist" on a cohort without VAFs) are noise here
    logging.getLogger("neo4j.notifications").setLevel(logging.ERROR)


def _counts_table(manifest: dict) -> Table:
    t = Table(title=term(f"run: cohort {manifest['cohort']}"))
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


@app.command("build-graph", epilog=example("graphonc build-graph --config configs/metabric.yaml --out runs/metabric"))
@handles_errors
def build_graph_cmd(
    ctx: typer.Context,
    config: Path = typer.Option(..., "--config", "-c", help="Cohort config YAML, e.g. configs/metabric.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write, e.g. runs/metabric."),
    store: Store = typer.Option(Store.parquet, "--store", help="parquet (the run folder only) or neo4j "
                                "(the run folder, then loaded into Neo4j: see load-neo4j)."),
    batch_size: int = BATCH_SIZE_OPTION,
    workers: int = WORKERS_OPTION,
    force: bool = typer.Option(False, "--force", help="Rebuild a run that holds later stages (model/, index/, "
                               "reports/ ...), dropping them; without it they are kept and the build refused."),
) -> None:
    """Build the heterogeneous patient graph of a cohort into a run folder (Parquet)."""
    settings = settings_of(ctx)
    manifest = api.build_graph(config, out, progress=settings.progress, force=force)
    if not settings.quiet:
        out_console.print(_counts_table(manifest))
        out_console.print(term(f"wrote {out} in {manifest['build_seconds']:.1f} s"))
    if store is Store.neo4j:
        _load_neo4j(settings, out, batch_size, workers)


def _load_neo4j(settings: Settings, run: Path, batch_size: int, workers: int) -> None:
    neo = api.neo4j_settings()
    report = api.load_neo4j(run, settings=neo, batch_size=batch_size, progress=settings.progress, workers=workers)
    if not settings.quiet:
        out_console.print(term(f"loaded cohort {report.cohort!r} into {neo.uri} (database {neo.database}): "
                               f"{sum(report.nodes.values()):,} nodes, {sum(report.relationships.values()):,} "
                               f"relationships in {report.seconds:.1f} s; removed {report.deleted_stale_nodes:,} "
                               f"stale nodes and {report.deleted_stale_relationships:,} stale relationships"))


@app.command("load-neo4j", epilog=example("graphonc load-neo4j --run runs/metabric"))
@handles_errors
def load_neo4j_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(None, help="A run folder built by build-graph (or --run)."),
    run_opt: Path = typer.Option(None, "--run", "-r", help="Run folder made by build-graph, e.g. runs/metabric."),
    batch_size: int = BATCH_SIZE_OPTION,
    workers: int = WORKERS_OPTION,
) -> None:
    """Load a run folder into Neo4j (idempotent; NEO4J_URI/USER/PASSWORD/DATABASE, default the local server)."""
    _load_neo4j(settings_of(ctx), one_run(run, run_opt, "load-neo4j"), batch_size, workers)


@app.command("info", epilog=example("graphonc info --run runs/metabric --graph-stats"))
@handles_errors
def info_cmd(
    ctx: typer.Context,
    run: Path = typer.Argument(None, help="A run folder (or --run)."),
    run_opt: Path = typer.Option(None, "--run", "-r", help="Run folder made by build-graph, e.g. runs/metabric."),
    graph_stats: bool = typer.Option(False, "--graph-stats", help="Also show degrees, hub genes and pathways, "
                                     "patient-gene components and isolated patients."),
) -> None:
    """Show what a run folder holds: node and edge counts, pathway filtering, build details."""
    got = api.info(one_run(run, run_opt, "info"), graph_stats=graph_stats)
    m = got.manifest
    out_console.print(_counts_table(m))
    pw = Table(title="pathways (kept = touch at least one mutated gene)")
    for col in ("source", "sets", "dropped_by_size", "dropped_no_mutated_gene", "kept"):
        pw.add_column(col, justify="left" if col == "source" else "right")
    for src, s in sorted(m.get("stats", {}).get("pathways", {}).items()):
        pw.add_row(term(src), *(f"{s[k]:,}" for k in ("sets", "dropped_by_size", "dropped_no_mutated_gene", "kept")))
    if pw.row_count:
        out_console.print(pw)
    if m.get("column_keys"):
        out_console.print(_column_keys_table(m["column_keys"]))
    out_console.print(term(f"graphonc {m['graphonc_version']}, config {m.get('config_file')} "
                           f"(sha256 {m['config_hash'][:12]}), built {m['built_at']} in {m['build_seconds']:.1f} s"))
    for title, header, rows in got.graph_stats or ():
        t = Table(title=title)
        for h in header:
            t.add_column(h, justify="right" if h in got.numeric_columns else "left")
        for row in rows:  # ids and names from the data are shown literally, never as markup
            t.add_row(*(term(c) for c in row))
        out_console.print(t)


def _column_keys_table(column_keys: dict) -> Table:
    """Columns whose names are not Cypher identifiers, and the keys they have in Parquet and Neo4j."""
    t = Table(title="columns renamed to safe keys (Parquet and Neo4j use the key; reports the column)")
    for c in ("table", "column", "key"):
        t.add_column(c, overflow="fold")
    for table, keys in sorted(column_keys.items()):
        for column, key in keys.items():
            t.add_row(term(table), term(repr(column)), term(key))
    return t


@app.command("train", epilog=example("graphonc train --run runs/metabric --epochs 50 --device cpu"))
@handles_errors
def train_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    config: Path = MODEL_CONFIG_OPTION,
    epochs: int = EPOCHS_OPTION,
    device: str = TRAIN_DEVICE_OPTION,
    tune: bool = typer.Option(False, "--tune", help="Choose hyper-parameters first by nested CV inside the "
                              "training patients, within model.tune_budget_s seconds (see --tune-budget)."),
    tune_budget: float = typer.Option(None, "--tune-budget", help="Seconds for --tune (default model.tune_budget_s)."),
) -> None:
    """Train the GNN (diagnosis + survival) and write embeddings, predictions and plots into <run>/model."""
    settings = settings_of(ctx)
    m = api.train(run, config=config, progress=settings.progress, epochs=epochs, device=device, tune=tune,
                  tune_budget_s=tune_budget)
    if not settings.quiet:
        t = Table(title=f"out-of-bag validation metrics ({m['n_validation']} held-out patients, "
                                f"best epoch {m['best_epoch']})")
        t.add_column("metric")
        t.add_column("value", justify="right")
        for k, v in m["validation"].items():
            t.add_row(k, f"{v:.3f}")
        out_console.print(t)
        if m.get("tuning"):
            tn = m["tuning"]
            changed = ", ".join(f"{k}={v}" for k, v in tn["changed"].items()) or "none: the config's values won"
            out_console.print(term(f"tuning: {tn['screened']} candidates screened, {tn['confirmed']} confirmed with "
                                   f"the ensemble in {tn['seconds']:.0f} s; changed: {changed} (model/tuning.csv)"))
        linear = m.get("member_risk", []).count("linear")
        if linear:
            out_console.print(term(f"risk from penalised Cox with splines in {linear} of {len(m['member_risk'])} "
                                   "networks (model.risk_fallback)"))
        if m.get("label_trees"):
            lt = m["label_trees"]
            how = "chosen by out-of-bag log-loss" if lt["chosen_by"] != "config" else "from model.label_boosting"
            out_console.print(term(
                f"class probabilities: the network's averaged with gradient-boosted trees' on {lt['columns']} input "
                f"columns, weight {lt['weight']:g} on the trees ({how}); the label metrics above are the network's"
                if lt["weight"] > 0 else
                f"class probabilities: the network's alone (weight 0 on the gradient-boosted trees, {how})"))
        if m.get("at_chance"):
            err_console.print(term(f"warning: the {', '.join(m['at_chance'])} head(s) stayed at chance on the "
                                   "validation patients (flagged in metrics.json); try --tune"))
        out_console.print(term(f"wrote {api.open_run(run).layout.model_dir} in {m['train_seconds']:.0f} s on {m['device']}"))


def _print_table(title: str, table, first: str = "metric") -> None:
    """Metrics down, models across (a handful of models fit a terminal's width, nine metrics did not)."""
    import pandas as pd

    t = Table(title=title)
    t.add_column(first)
    for name in table.index:
        t.add_column(term(name), justify="right")
    for c in table.columns:
        t.add_row(term(c), *("" if pd.isna(v) else term(v) for v in table[c]))
    out_console.print(t)


@app.command("evaluate", epilog=example("graphonc evaluate --run runs/metabric --folds 5 --repeats 3"))
@handles_errors
def evaluate_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    folds: int = FOLDS_OPTION,
    repeats: int = REPEATS_OPTION,
    folds_file: Path = FOLDS_FILE_OPTION,
    config: Path = MODEL_CONFIG_OPTION,
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also run the baselines."),
    epochs: int = EPOCHS_OPTION,
    with_expression_derived: bool = typer.Option(None, "--with-expression-derived/--without-expression-derived",
                                                 help="Sensitivity row: add clinical.expression_derived columns "
                                                 "to every model's inputs."),
    after_diagnosis: bool = typer.Option(None, "--after-diagnosis/--at-diagnosis", help="Let every model see "
                                         "treatments and after-diagnosis columns (default: model.at_diagnosis)."),
    tune: bool = typer.Option(False, "--tune", help="Tune the GNN/MLP by nested CV inside each training fold."),
) -> None:
    """Leakage-free (repeated) k-fold CV of the GNN, an MLP without the graph, and the baselines; writes <run>/eval."""
    settings = settings_of(ctx)
    table = api.evaluate(run, folds=folds, repeats=repeats, folds_file=folds_file, config=config,
                         baselines=baselines, epochs=epochs, tune=tune, with_expression_derived=with_expression_derived,
                         at_diagnosis=None if after_diagnosis is None else not after_diagnosis,
                         progress=settings.progress)
    _print_table("cross-validation (mean ± sd over folds × repeats)", table)
    eval_dir = api.open_run(run).layout.eval_dir
    if (eval_dir / "comparison.md").exists():
        out_console.print(term((eval_dir / "comparison.md").read_text(encoding="utf-8")))
    out_console.print(term(f"wrote {eval_dir}"))


@app.command("embed", epilog=example("graphonc embed --run runs/metabric --patients new/clinical.tsv "
                                     "--mutations new/mutations.tsv --out runs/metabric_new"))
@handles_errors
def embed_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    patients: Path = typer.Option(..., "--patients", "-p", help="New patients: a cBioPortal study folder or a "
                                  "clinical table (build-graph input formats)."),
    mutations: Path = MUTATIONS_OPTION,
    model: Path = MODEL_DIR_OPTION,
    config: Path = typer.Option(None, "--config", "-c", help="The run's config, if the run does not record it."),
    out: Path = typer.Option(None, "--out", "-o", help="Write embeddings/predictions Parquet files here."),
) -> None:
    """Embed and score patients the model has never seen, without retraining (inductive)."""
    emb = api.embed(run, patients, mutations=mutations, model=model, config=config, out=out)
    if settings_of(ctx).quiet:
        return
    pred = emb.predictions()
    unmatched = emb.unmatched.set_index("id").sum(axis=1) if len(emb.unmatched.columns) > 1 else None
    t = Table(title=f"{len(emb.ids)} new patient(s) embedded ({emb.embeddings.shape[1]}-d)")
    for c in ("patient", "risk", *(["predicted", "p"] if emb.classes else []), "unattached links"):
        t.add_column(c, justify="left" if c in ("patient", "predicted") else "right")
    for _, r in pred.head(50).iterrows():
        label = [term(r["predicted_label"]), f"{r[f'p_{r.predicted_label}']:.2f}"] if emb.classes else []
        n_unattached = str(int(unmatched[r["id"]])) if unmatched is not None else "0"
        t.add_row(term(r["id"]), f"{r['risk']:.3f}", *label, n_unattached)
    out_console.print(t)
    if len(pred) > 50:
        out_console.print(term(f"... {len(pred) - 50} more" + (f" in {out}" if out else " (use --out to save all)")))
    elif out is not None:
        out_console.print(term(f"wrote {out}"))


@app.command("explain", epilog=example("graphonc explain --run runs/metabric --patient MB-0002 --top 5"))
@handles_errors
def explain_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    patient: str = typer.Option(..., "--patient", "-p", help="Patient id."),
    model: Path = MODEL_DIR_OPTION,
    n_top: int = typer.Option(8, "--top", "-n", help="Rows per target and kind."),
    steps: int = typer.Option(32, "--steps", help="Integrated-gradients steps (more = closer to exact)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Which clinical features, mutations, genes, pathways and treatments drove a patient's risk and diagnosis."""
    import json

    e = api.explain(run, patient, model=model, steps=steps, top=n_top)
    t = e.table
    if as_json:
        doc = {"patient": e.patient, "predicted_label": e.predicted_label, "outputs": e.outputs,
               "notes": e.notes, "attributions": json.loads(t.to_json(orient="records"))}
        print(json.dumps(doc, indent=1))
        return
    for note in e.notes:
        out_console.print(term(note))
    for target, out in e.outputs.items():
        what = "risk (log hazard)" if target == "risk" else f"log p({e.predicted_label})"
        tab = Table(title=term(f"{patient}: {what} {out['value']:.3f} vs baseline {out['baseline']:.3f} "
                               f"(IG gap {out['delta']:.3f})"))
        for c in ("kind", "name", "value", "linked", "attribution"):
            tab.add_column(c, justify="right" if c == "attribution" else "left")
        for _, r in t[t["target"] == target].iterrows():
            tab.add_row(r["kind"], term(r["name"]), term(r["value"]),
                        "yes" if r["linked"] else "", f"{r['attribution']:+.3f}")
        out_console.print(tab)


neo4j_app = typer.Typer(help="Run the bundled local Neo4j 5.26 Community server (127.0.0.1 only).",
                        no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")

_DATA_DIR = typer.Option(None, "--data-dir", help="Server folder (default $GRAPHONC_NEO4J_DATA_DIR or ~/.local/share/graphonc/neo4j).")
_BOLT = typer.Option(None, "--bolt-port", envvar="GRAPHONC_NEO4J_BOLT_PORT", show_envvar=False,
                     help="Bolt port (default $GRAPHONC_NEO4J_BOLT_PORT or 7687).")
_HTTP = typer.Option(None, "--http-port", envvar="GRAPHONC_NEO4J_HTTP_PORT", show_envvar=False,
                     help="HTTP/Browser port (default $GRAPHONC_NEO4J_HTTP_PORT or 7474).")
_CACHE = typer.Option(None, "--cache-dir", help="Maven cache for the jars (default $GRAPHONC_MAVEN_CACHE or "
                      "~/.cache/graphonc/neo4j).")


def _server_config(**given):
    """The server settings: the options given, else Neo4jServerConfig's defaults (environment, then built-in)."""
    return api.neo4j_server_config(**given)


def _fetch_jars_notice(cfg) -> None:
    if not api.neo4j_jars_ready(cfg):
        err_console.print(f"Fetching the Neo4j {api.neo4j_version()} jars with Maven into {cfg.cache_dir} "
                          "(once; about a minute)...")


@neo4j_app.command("start", epilog=example("graphonc neo4j start --heap 1g"))
@handles_errors
def neo4j_start(data_dir: Path = _DATA_DIR, bolt_port: int = _BOLT, http_port: int = _HTTP,
                heap: str = typer.Option(None, "--heap", help="JVM heap, e.g. 1g."),
                pagecache: str = typer.Option(None, "--pagecache", help="Page cache, e.g. 512m."),
                cache_dir: Path = _CACHE,
                timeout: float = typer.Option(120, "--timeout", help="Seconds to wait for Bolt to answer.")) -> None:
    """Fetch the jars with Maven (once), start the server, wait until Bolt answers."""
    cfg = _server_config(data_dir=data_dir, bolt_port=bolt_port, http_port=http_port, heap=heap,
                         pagecache=pagecache, cache_dir=cache_dir)
    _fetch_jars_notice(cfg)
    st = api.neo4j_start(cfg, timeout=timeout)
    out_console.print(f"Neo4j {api.neo4j_version()} running: pid {st.pid}, {st.bolt_uri}, browser {st.browser_url}",
                      markup=False, highlight=False)
    if st.password_generated:
        out_console.print(f"Generated password for user '{api.neo4j_user()}' (stored in {cfg.password_file}, shown once): "
                          f"{cfg.password_file.read_text(encoding='utf-8').strip()}", markup=False, highlight=False)


@neo4j_app.command("stop", epilog=example("graphonc neo4j stop"))
@handles_errors
def neo4j_stop(data_dir: Path = _DATA_DIR,
               timeout: float = typer.Option(60, "--timeout", help="Seconds to wait for a clean shutdown.")) -> None:
    """Stop the server cleanly (harmless when it is not running)."""
    was_running = api.neo4j_stop(_server_config(data_dir=data_dir), timeout=timeout)
    out_console.print("Neo4j stopped." if was_running else "Neo4j was not running.")


@neo4j_app.command("status", epilog=example("graphonc neo4j status"))
@handles_errors
def neo4j_status(data_dir: Path = _DATA_DIR) -> None:
    """Say whether the server runs and where (exit code 3 when it does not)."""
    cfg = _server_config(data_dir=data_dir)
    current = api.neo4j_status(cfg)
    if current is None:
        out_console.print(f"Neo4j is not running (data folder {cfg.data_dir}).", markup=False, highlight=False)
        raise typer.Exit(3)
    out_console.print(f"Neo4j running: pid {current.pid}, {current.bolt_uri}, browser {current.browser_url}",
                      markup=False, highlight=False)


@neo4j_app.command("resolve", epilog=example("graphonc neo4j resolve --cache-dir ~/.cache/graphonc/neo4j"))
@handles_errors
def neo4j_resolve(cache_dir: Path = _CACHE) -> None:
    """Only fetch the Neo4j jars with Maven (setup and CI)."""
    cfg = _server_config(cache_dir=cache_dir)
    _fetch_jars_notice(cfg)
    out_console.print(f"Neo4j {api.neo4j_version()} jars in {api.neo4j_resolve(cfg)}", markup=False,
                      highlight=False)


cypher_app = typer.Typer(help="Run the parameterised Cypher files in cypher/.", no_args_is_help=True)
app.add_typer(cypher_app, name="cypher")


@cypher_app.command("run", epilog=example("graphonc cypher run cypher/patient_profile.cypher -p cohort=metabric "
                                            "-p patient=MB-0002"))
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

    res = api.cypher_run(file, param)
    cols, rows = res.columns, res.rows
    if as_json:
        out_console.print_json(json.dumps([dict(zip(cols, r)) for r in rows], default=str), ensure_ascii=True)
        return
    t = Table(title=term(res.title), caption=f"{len(rows)} row(s)")
    for c in cols:
        t.add_column(term(c))
    for r in rows:
        t.add_row(*(term(v) for v in r))
    out_console.print(t)



# ------------------------------------------------------------------ similar-patient search


class IndexKind(str, Enum):
    auto = "auto"
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"
    ivfpq = "ivfpq"


@app.command("index", epilog=example("graphonc index --run runs/metabric", "graphonc index --run runs/hn1 --from features"))
@handles_errors
def index_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    kind: IndexKind = typer.Option(None, "--type", help="auto: exact flat below 50k patients, HNSW "
                                   "up to 2M, IVF-PQ above; or force one. Default: the config's search.kind, else auto."),
    device: SearchDevice = DEVICE_OPTION,
    hnsw_m: int = typer.Option(None, "--hnsw-m", help="HNSW links per node (default search.hnsw_m, else 32)."),
    ef_search: int = typer.Option(None, "--ef-search", help="HNSW search beam width (default search.ef_search, "
                                  "else 128)."),
    nlist: int = typer.Option(None, "--nlist", help="IVF cells (default search.nlist, else about sqrt(n))."),
    nprobe: int = typer.Option(None, "--nprobe", help="IVF cells visited per query (default search.nprobe, else 16)."),
    source: str = typer.Option("model", "--from", help="model: the trained model's embeddings; features: the "
                               "encoded clinical (+ radiomic) features, for cohorts without outcomes to train on."),
) -> None:
    """Build the FAISS index of the patient embeddings (cosine) into <run>/index.

    Options not given come from the search: section of the run's config (docs/config.md#search).
    """
    idx = api.index(run, kind=kind and kind.value, device=device and device.value, hnsw_m=hnsw_m,
                    ef_search=ef_search, nlist=nlist, nprobe=nprobe, source=source)
    if not settings_of(ctx).quiet:
        out_console.print(term(f"indexed {idx.n:,} patients ({idx.dim}-d, {idx.kind}, searching on {idx.device}) in "
                               f"{idx.meta['build_seconds']:.2f} s; wrote {api.open_run(run).layout.index_dir}"))


def _similar_table(res, details: bool = False) -> Table:
    """The neighbours as a table: compact (fits 80 columns: rank, patient, score, label, why, outcome),
    or with every reason in its own column (``details``)."""
    q = res.query
    title = (f"{len(res.neighbours)} patients most similar to {q.id}{' (new)' if q.new else ''}"
             f" — label {q.label or '?'}, {len(q.mutations)} mutations, index {res.index_kind}")
    t = Table(title=term(title), caption=term(f"filters: {res.filters.describe()}"), show_lines=True)
    if not details:
        for c in ("#", "patient", "score", "label", "why similar", "outcome"):
            t.add_column(c, justify="right" if c in ("#", "score") else "left", overflow="fold",
                         ratio=3 if c == "why similar" else None)
        for n in res.neighbours:
            t.add_row(str(n.rank), term(n.id), f"{n.score:.2f}", term(n.label or "?"), term(api.plain_reasons(n)),
                      term(n.status.replace("alive at last follow-up", "alive")))
        return t
    for c in ("#", "patient", "score", "label", "shared mutations / genes (role)", "shared pathways",
              "clinical", "treatments", "outcome"):
        t.add_column(c, justify="right" if c in ("#", "score") else "left", overflow="fold")
    for n in res.neighbours:
        shared = term(*n.shared_mutations, *(f"{g['gene']} ({g['role']})" for g in n.shared_genes), sep="\n")
        pw = f"{n.n_shared_pathways}" + (f": {n.shared_pathways[0]['name']}" if n.shared_pathways else "")
        n_same, n_all = len(n.clinical_similar), len(n.clinical_similar) + len(n.clinical_different)
        diff = ", ".join(f"{c['column']} {c['query']}→{c['neighbour']}" for c in n.clinical_different)
        clinical = [f"{n_same}/{n_all} alike" + (f"; differ: {diff}" if diff else "")]
        if n.shared_phenotypes:
            clinical.append("radiomics: " + ", ".join(p["phenotype"] for p in n.shared_phenotypes))
        t.add_row(str(n.rank), term(n.id), f"{n.score:.3f}", term(n.label or "?"), shared or "-", term(pw),
                  term(*clinical, sep="\n"), term(", ".join(n.treatments) or "-"), term(n.status))
    return t


@app.command("similar", epilog=example("graphonc similar --run runs/metabric --patient MB-0002 -k 5 --same-label"))
@handles_errors
def similar_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    patient: list[str] = typer.Option([], "--patient", "-p", help="Patient id of the run (repeatable)."),
    new_patient: Path = typer.Option(None, "--new-patient", help="New patient(s) in the build-graph input formats: "
                                     "a cBioPortal study folder or a clinical table (see --mutations)."),
    mutations: Path = MUTATIONS_OPTION,
    k: int = K_OPTION,
    same_label: bool = SAME_LABEL_OPTION,
    treated_with: list[str] = TREATED_WITH_OPTION,
    alive_at: float = ALIVE_AT_OPTION,
    has_outcome: bool = HAS_OUTCOME_OPTION,
    device: SearchDevice = DEVICE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    details: bool = typer.Option(False, "--details", help="Every reason in its own column (a wide table)."),
) -> None:
    """The k most similar patients, the reasons (shared mutations, genes, pathways, clinical) and their outcomes."""
    import json

    results = api.similar(run, patient, new_patient=new_patient, mutations=mutations, k=k, same_label=same_label,
                          treated_with=treated_with, alive_at=alive_at, has_outcome=has_outcome,
                          device=device and device.value)
    if as_json:
        out_console.print_json(json.dumps([r.to_dict() for r in results], default=str), ensure_ascii=True)
        return
    for r in results:
        out_console.print(_similar_table(r, details))
        if len(r.neighbours) < k:
            out_console.print(term(f"only {len(r.neighbours)} patients pass the filters ({r.filters.describe()})"))


app.add_typer(radiomics_app, name="radiomics")  # graphonc radiomics extract|phenotype|assign


class ExportFormat(str, Enum):
    parquet = "parquet"
    npy = "npy"
    projector = "projector"
    neo4j = "neo4j"
    graphml = "graphml"
    gexf = "gexf"


class Projection(str, Enum):
    umap = "umap"
    tsne = "tsne"
    none = "none"


@app.command("export", epilog=example("graphonc export --run runs/metabric --format parquet --format npy --plot umap",
                                      "graphonc export --run runs/metabric -f graphml --neighbourhood Gene:PIK3CA --hops 1"))
@handles_errors
def export_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    fmt: list[ExportFormat] = typer.Option(..., "--format", "-f", help="parquet | npy | projector (TensorBoard) | "
                                           "neo4j (property + vector index + SIMILAR_TO) | graphml | gexf (the "
                                           "graph, for Cytoscape/Gephi); repeatable."),
    plot: Projection = typer.Option(Projection.none, "--plot", help="Also write a UMAP or t-SNE PNG coloured by "
                                    "diagnosis label (<run>/export/embeddings_<method>.png)."),
    k: int = typer.Option(10, "-k", help="Number of neighbours: neo4j and --with-similar, SIMILAR_TO per patient."),
    model_name: str = typer.Option(None, "--model-name", help="neo4j: the SIMILAR_TO model property "
                                   "(default graphonc-<hash of the patient ids>)."),
    index_name: str = typer.Option("patient_embedding", "--index-name", help="neo4j: vector index name."),
    property_name: str = typer.Option("embedding", "--property", help="neo4j: Patient property for the embedding."),
    patients: list[str] = typer.Option([], "--patients", help="graphml/gexf: only these patients and what they "
                                       "link to (repeatable)."),
    neighbourhood: str = typer.Option(None, "--neighbourhood", help="graphml/gexf: only the nodes within --hops of "
                                      "this node id (Label:id when ambiguous, e.g. Gene:PIK3CA)."),
    hops: int = typer.Option(2, "--hops", min=0, help="graphml/gexf: neighbourhood radius."),
    with_similar: bool = typer.Option(False, "--with-similar", help="graphml/gexf: add the model's SIMILAR_TO "
                                      "edges (top -k neighbours, score and rank)."),
    out: Path = typer.Option(None, "--out", "-o", help="graphml/gexf: file to write (default "
                             "<run>/export/<format>/<selection>.<format>)."),
) -> None:
    """Export patient embeddings (Parquet, NumPy, TensorBoard projector, Neo4j vector index) or the graph
    (GraphML, GEXF) into <run>/export."""
    settings = settings_of(ctx)
    for f in fmt:
        if f in (ExportFormat.graphml, ExportFormat.gexf):
            g = api.export(run, f.value, patients=patients, neighbourhood=neighbourhood, hops=hops,
                           with_similar=with_similar, k=k, model_name=model_name, out=out,
                           progress=settings.progress)
            if not settings.quiet:
                out_console.print(f"{f.value}: {g.nodes:,} nodes, {g.edges:,} edges ({g.selection}), "
                                  f"{g.bytes / 1e6:.1f} MB", "→", str(g.path), highlight=False, markup=False)
            continue
        res = api.export(run, f.value, k=k, model_name=model_name, index_name=index_name,
                         property_name=property_name)
        if not settings.quiet:
            out_console.print(term(f"{f.value}: {res.n:,} patients × {res.dim} → {res.folder} "
                                   f"({', '.join(res.files)})"))
            if res.details:
                d = res.details
                out_console.print(term(f"  Neo4j {d['uri']}: {d['patients_updated']:,} Patient.{d['property']}, "
                                       f"vector index {d['vector_index']} ({d['vector_index_action']}), "
                                       f"{d['similar_to_written']:,} SIMILAR_TO {{model: {d['similar_to_model']!r}}}; "
                                       f"overlap@{d['k']} of db.index.vector.queryNodes with FAISS: "
                                       f"{d['overlap_at_k_vs_faiss']:.3f} ({d['overlap_sample']} patients)"))
    if plot is not Projection.none:
        path = api.projection_plot(run, plot.value)
        if not settings.quiet:
            out_console.print(term(f"wrote {path}"))



@app.command("report", epilog=example("graphonc report --run runs/metabric --patient MB-0002",
                                      "graphonc report --run runs/metabric --new-patient new_patient.json"))
@handles_errors
def report_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    patient: str = typer.Option(None, "--patient", "-p", help="Patient id of the run."),
    new_patient: Path = typer.Option(None, "--new-patient", help="A new patient at diagnosis: a JSON or YAML file "
                                     "with the body of the service's new-patient API (docs/serve.md)."),
    out: Path = typer.Option(None, "--out", "-o", help="HTML file to write (default <run>/reports/<patient>.html, the id "
                             "percent-encoded); an existing file is only replaced when graphonc wrote it."),
    k: int = K_OPTION,
    same_label: bool = SAME_LABEL_OPTION,
    treated_with: list[str] = TREATED_WITH_OPTION,
    alive_at: float = ALIVE_AT_OPTION,
    has_outcome: bool = HAS_OUTCOME_OPTION,
    explain: bool = typer.Option(True, "--explain/--no-explain", help="Include the model's explanation "
                                 "(integrated gradients; the slowest part)."),
) -> None:
    """A self-contained HTML page for the tumour board: profile, neighbours with reasons, KM curves, treatments."""
    if (patient is None) == (new_patient is None):
        raise GraphoncError("give either --patient ID or --new-patient FILE.")
    if new_patient is not None:
        from graphonc.serve.report_file import write_new_patient_report

        filters = api.filters(same_label=same_label, treated_with=treated_with, alive_at=alive_at,
                              has_outcome=has_outcome)
        path = write_new_patient_report(run, new_patient, out, k=k, filters=filters, explain=explain)
    else:
        path = api.report(run, patient, out=out, k=k, same_label=same_label, treated_with=treated_with,
                          alive_at=alive_at, has_outcome=has_outcome, explain=explain)
    if not settings_of(ctx).quiet:
        out_console.print(term(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)"))



@app.command("serve", epilog=example("graphonc serve --run runs/metabric --port 8000"))
@handles_errors
def serve_cmd(
    ctx: typer.Context,
    run: list[Path] = typer.Option(..., "--run", "-r", help="A run folder with an index (repeatable)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default this machine only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    state_dir: Path = typer.Option(None, "--state-dir", help="Where the API token and the audit log live "
                                   "(default ~/.local/share/graphonc/serve)."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads (default: the CPUs this process may use)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes, each with the runs in memory "
                                "(about one core each; see docs/serve.md, Speed)."),
) -> None:
    """The tumour-board web app and JSON API (token required; see docs/serve.md)."""
    from graphonc.serve.app import serve


    serve(run, host=host, port=port, state_dir=state_dir, threads=threads, workers=workers)


@app.command("evaluate-similarity", epilog=example("graphonc evaluate-similarity --run runs/metabric --folds 5 -k 10 "
                                                   "--method gnn --method knn_features"))
@handles_errors
def evaluate_similarity_cmd(
    ctx: typer.Context,
    run: Path = RUN_OPTION,
    folds: int = FOLDS_OPTION,
    repeats: int = REPEATS_OPTION,
    folds_file: Path = FOLDS_FILE_OPTION,
    k: int = K_OPTION,
    method: list[str] = typer.Option([], "--method", "-m", help="gnn, mlp, knn_features, jaccard_genes, snf, random "
                                     "(repeatable; default all)."),
    subsample: int = typer.Option(None, "--subsample", help="Evaluate on a stratified subset of this many patients."),
    epochs: int = EPOCHS_OPTION,
    reuse: bool = typer.Option(True, "--reuse/--retrain", help="Reuse the fold models of an earlier `evaluate` on "
                               "the same fold plan (<run>/eval) instead of training them again."),
) -> None:
    """Neighbour quality on held-out folds: subtype precision@k and C-index of the neighbour-mean risk, GNN vs baselines."""
    res = api.evaluate_similarity(run, folds=folds, repeats=repeats, folds_file=folds_file, k=k,
                                  methods=method or None, subsample=subsample, epochs=epochs, reuse=reuse,
                                  progress=settings_of(ctx).progress)
    _print_table(f"similarity on held-out folds, k={k} (mean ± sd over folds × repeats)", res.summary, "method")
    if res.reused:
        out_console.print(term(f"reused the fold models of {api.open_run(run).layout.eval_dir} for: "
                               f"{', '.join(res.reused)}"))
    out_console.print(term(f"wrote {api.open_run(run).layout.similarity_dir}"))


if __name__ == "__main__":  # pragma: no cover
    app()
