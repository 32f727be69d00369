"""``graphonc radiomics extract | phenotype | assign``: thin Typer wrappers over :mod:`graphonc.api`."""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from graphonc import api
from graphonc.cli_common import err_console, example, handles_errors, out_console, settings_of, term
from graphonc.errors import GraphoncError

radiomics_app = typer.Typer(help="Radiomic features and phenotypes: extract (pyradiomics), phenotype, assign.",
                            no_args_is_help=True)


class OnMismatch(str, Enum):
    resample = "resample"
    reject = "reject"


class Aggregate(str, Enum):
    error = "error"
    mean = "mean"
    largest = "largest"


@radiomics_app.command("extract", epilog=example(
    "graphonc radiomics extract --manifest hn1/manifest.csv --out runs/hn1_features.parquet -j 2",
    "graphonc radiomics extract --features-csv features.csv --config configs/hn1.yaml --out runs/features.parquet"))
@handles_errors
def extract_cmd(
    ctx: typer.Context,
    manifest: Path = typer.Option(None, "--manifest", "-m", help="CSV/TSV: patient_id, image, mask[, case_id, label, "
                                  "modality, site, scanner, …]; paths relative to the manifest."),
    params: Path = typer.Option(Path("configs/radiomics.yaml"), "--params", "-p", help="Extraction settings YAML."),
    out: Path = typer.Option(..., "--out", "-o", help="Feature table to write (Parquet), e.g. runs/x/features.parquet; "
                             "the errors table and a report are written beside it."),
    workers: int = typer.Option(None, "--workers", "-j", help="Worker processes of the local Dask cluster "
                                "(default: params 'workers'; 0 = every core; 1 = in this process)."),
    scheduler: str = typer.Option(None, "--scheduler", help="Address of an existing Dask scheduler "
                                  "(tcp://host:8786) whose workers extract the cases; default: a local cluster of "
                                  "--workers processes. Workers read the images by path."),
    cases_per_task: int = typer.Option(None, "--cases-per-task", min=1, help="Cases a Dask task extracts one "
                                       "after the other (default: from the number of cases and workers, 1 for "
                                       "small batches, at most 16)."),
    cache: Path = typer.Option(None, "--cache", help="Result cache folder (default $GRAPHONC_RADIOMICS_CACHE or "
                               "~/.cache/graphonc/radiomics)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any case failed."),
    on_mismatch: OnMismatch = typer.Option(None, "--on-mismatch", help="Mask not on the image grid: resample "
                                           "(within --tolerance-mm) or reject (default: params 'geometry')."),
    tolerance_mm: float = typer.Option(None, "--tolerance-mm", help="Largest grid mismatch (mm) that is resampled."),
    features_csv: Path = typer.Option(None, "--features-csv", help="Instead of images: a table of precomputed "
                                      "features (e.g. HN1's), converted to the same feature table."),
    config: Path = typer.Option(None, "--config", "-c", help="With --features-csv: a cohort config whose "
                                "radiomics.features section maps the columns."),
    id_column: str = typer.Option(None, "--id-column", help="With --features-csv: the patient id column."),
    roi_column: str = typer.Option(None, "--roi-column", help="With --features-csv: the ROI/structure column."),
    roi: list[str] = typer.Option(None, "--roi", help="With --features-csv: keep rows of this ROI (repeatable)."),
    aggregate: Aggregate = typer.Option(None, "--aggregate", help="With --features-csv: several rows per patient: "
                                        "error, mean, or the largest ROI."),
) -> None:
    """Extract pyradiomics features for every case of a manifest (parallel, cached, resumable)."""
    settings = settings_of(ctx)
    if features_csv is not None:
        _import_csv(settings, features_csv, out, config, id_column, roi_column, roi, aggregate)
        return
    if manifest is None:
        raise GraphoncError("give --manifest (images) or --features-csv (precomputed features).")
    result, report = api.radiomics_extract(manifest, out, params=params, workers=workers, cache=cache,
                                           use_cache=not no_cache, on_mismatch=on_mismatch and on_mismatch.value,
                                           tolerance_mm=tolerance_mm, progress=settings.progress,
                                           scheduler=scheduler, cases_per_task=cases_per_task)
    c = result.counts
    if not result.errors.empty:
        t = Table(title=f"{len(result.errors)} case(s) failed (also in {report['errors_table']})")
        for col in ("case_id", "reason", "message"):
            t.add_column(col, overflow="fold")
        for row in result.errors.itertuples():
            t.add_row(term(row.case_id), term(row.reason), term(row.message))
        err_console.print(t)
    if not settings.quiet:
        out_console.print(term(f"wrote {out}: {len(result.features)} case(s) x {report['features']} features "
                               f"({c['extracted']} extracted, {c['cached']} from cache, {c['failed']} failed) in "
                               f"{result.seconds:.1f} s with {result.workers} worker(s)"))
    if strict and c["failed"]:
        err_console.print(f"[bold red]error:[/] {c['failed']} case(s) failed (--strict).")
        raise typer.Exit(1)


def _import_csv(settings, features_csv: Path, out: Path, config: Path | None, id_column: str | None,
                roi_column: str | None, roi: list[str] | None, aggregate: Aggregate | None) -> None:
    pf = api.radiomics_import(features_csv, out, config=config, id_column=id_column, roi_column=roi_column,
                              roi=roi or (), aggregate=aggregate.value if aggregate else None)
    if not settings.quiet:
        out_console.print(term(f"wrote {out}: {len(pf.values)} patients x {pf.values.shape[1]} features "
                               f"(from {features_csv.name})"))


@radiomics_app.command("phenotype", epilog=example(
    "graphonc radiomics phenotype --features runs/hn1_features.parquet --out runs/hn1_phenotypes --k-max 4"))
@handles_errors
def phenotype_cmd(
    ctx: typer.Context,
    features: Path = typer.Option(..., "--features", "-f", help="Feature table: Parquet from `radiomics extract`, or "
                                  "a CSV mapped by --config's radiomics.features section."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (model, phenotypes, assignments, report)."),
    config: Path = typer.Option(Path("configs/radiomics.yaml"), "--config", "-c", help="Phenotype settings: a "
                                "radiomics params file (phenotypes:) or a cohort config (radiomics.phenotypes)."),
    batch_column: str = typer.Option(None, "--batch-column", help="Site/scanner column (overrides the config)."),
    harmonization: str = typer.Option(None, "--harmonization", help="none, zscore, per_batch or combat."),
    method: str = typer.Option(None, "--method", help="gmm or kmeans."),
    k_min: int = typer.Option(None, "--k-min"),
    k_max: int = typer.Option(None, "--k-max"),
    seed: int = typer.Option(None, "--seed"),
) -> None:
    """Harmonise features and cluster patients into radiomic phenotypes (k by BIC or silhouette)."""
    settings = settings_of(ctx)
    model, spec = api.radiomics_phenotype(features, out, config=config, batch_column=batch_column,
                                          harmonization=harmonization, method=method, k_min=k_min, k_max=k_max,
                                          seed=seed)
    if not settings.quiet:
        t = Table(title=f"{model.k} radiomic phenotypes over {model.n_fit} patients ({spec.method}, k by {spec.selection}; "
                        f"{len(model.harmonizer.selected_)} of {len(model.harmonizer.features_)} features kept)")
        for col in ("id", "patients", "description", "signature"):
            t.add_column(col, overflow="fold")
        for row in model.phenotype_table().itertuples():
            t.add_row(term(row.id), str(row.n_patients), term(row.description), term(row.signature))
        out_console.print(t)
        out_console.print(term(f"wrote {out}"))


@radiomics_app.command("assign", epilog=example(
    "graphonc radiomics assign --model runs/hn1_phenotypes --features new.parquet --out runs/new_assign.parquet"))
@handles_errors
def assign_cmd(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", help="Folder written by `radiomics phenotype`."),
    features: Path = typer.Option(..., "--features", "-f", help="Feature table of the new patients."),
    out: Path = typer.Option(..., "--out", "-o", help="Assignments to write (Parquet)."),
    config: Path = typer.Option(None, "--config", "-c", help="A cohort config whose radiomics.features maps a CSV."),
) -> None:
    """Assign new patients to existing phenotypes with the saved transform (no refitting)."""
    table = api.radiomics_assign(model, features, out, config=config)
    if not settings_of(ctx).quiet:
        counts = table["phenotype"].value_counts().sort_index()
        out_console.print(term(f"wrote {out}: {len(table)} patients; " +
                               ", ".join(f"{k}: {v}" for k, v in counts.items())))
