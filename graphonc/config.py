"""Cohort configs (``configs/*.yaml``) as validated pydantic models.

Everything cohort-specific lives in a config: which files, which clinical columns are
features, which column is the diagnosis label, which are survival time/event, which
treatments, which pathway sources, which mutation classes to keep. Relative paths are
resolved against the config file's folder. Errors name the offending key.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graphonc.errors import ConfigError
from graphonc.model.settings import ModelConfig
from graphonc.radiomics.settings import RadiomicsSpec

_STRICT = ConfigDict(extra="forbid")

#: Variant classes that do not change the protein (MAF ``Variant_Classification``).
NON_PROTEIN_ALTERING = [
    "Silent", "Intron", "3'UTR", "5'UTR", "3'Flank", "5'Flank", "IGR", "RNA", "Splice_Region", "lincRNA",
]


class CBioPortalInput(BaseModel):
    """A cBioPortal study folder; file names default to the datahub conventions."""

    model_config = _STRICT
    kind: Literal["cbioportal"] = "cbioportal"
    study_dir: Path
    clinical_patient: str = "data_clinical_patient.txt"
    clinical_sample: str | None = "data_clinical_sample.txt"
    #: MAF file name; None = the first ``data_mutations*.txt`` in the folder.
    mutations: str | None = None
    #: ``data_gene_panel*.txt`` files that define panels (gene lists); None = all found.
    gene_panels: list[str] | None = None
    gene_panel_matrix: str | None = "data_gene_panel_matrix.txt"


class TableInput(BaseModel):
    """Plain tables: one clinical table (a row per patient) and a long mutation table."""

    model_config = _STRICT
    kind: Literal["tables"] = "tables"
    clinical: Path
    mutations: Path | None = None
    #: Optional long table patient_id, gene listing the genes each patient was assayed for.
    assayed_genes: Path | None = None
    patient_id_column: str = "patient_id"


class MutationTableColumns(BaseModel):
    """Column names of a long-format mutation table."""

    model_config = _STRICT
    patient_id: str = "patient_id"
    gene: str = "gene"
    protein_change: str = "protein_change"
    variant_class: str | None = "variant_class"
    vaf: str | None = "vaf"


class SurvivalSpec(BaseModel):
    """An (event, time) endpoint; statuses like '1:DECEASED' use their numeric prefix."""

    model_config = _STRICT
    time: str
    event: str
    #: Status strings (case-insensitive) counted as the event when there is no ``N:`` prefix.
    event_values: list[str] = ["DECEASED", "DEAD", "1", "TRUE", "YES", "Recurred", "Progressed"]
    censored_values: list[str] = ["LIVING", "ALIVE", "0", "FALSE", "NO", "DiseaseFree", "Censored"]
    unit: Literal["months", "days", "years"] = "months"


class LabelSpec(BaseModel):
    """The diagnosis label: a categorical column; listed values count as missing.

    Rare categories can be pooled: ``map`` renames raw values (several values onto one class,
    e.g. the adenocarcinoma types of a cervical cohort onto ``adenocarcinoma``), then classes
    with fewer than ``min_count`` labelled patients become ``other_label``. Both apply to the
    whole cohort before any fold is drawn (a class definition, not a statistic a model learns).
    """

    model_config = _STRICT
    column: str
    missing_values: list[str] = []
    map: dict[str, str] = {}
    min_count: int | None = Field(default=None, ge=1)
    other_label: str = "other"


class TreatmentSpec(BaseModel):
    """A treatment node received when ``column``'s value is one of ``received_values``."""

    model_config = _STRICT
    name: str
    column: str
    received_values: list[str] = ["YES", "Yes", "yes", "1", "TRUE", "True"]


class ClinicalSpec(BaseModel):
    model_config = _STRICT
    numeric: list[str] = []
    categorical: list[str] = []
    #: Shown on Patient nodes and in reports, never given to a model.
    display: list[str] = []
    #: Columns that encode the label; refused as features.
    leakage: list[str] = []
    #: Columns known only after diagnosis (treatments, surgery type, treatment plans): stored on
    #: Patient nodes, used as filters and outcome context, never inputs of a model for patients
    #: at diagnosis. Every other clinical column counts as known at diagnosis.
    after_diagnosis: list[str] = []
    #: Columns derived from expression arrays (e.g. METABRIC's ER/PR/HER2_STATUS calls): display
    #: only by default, because an expression-defined label would leak through them; an
    #: evaluation may add them as a sensitivity row.
    expression_derived: list[str] = []
    label: LabelSpec | None = None
    survival: SurvivalSpec | None = None
    #: Extra endpoints keyed by name (e.g. rfs, dss), stored as <name>_time/<name>_event.
    extra_survival: dict[str, SurvivalSpec] = {}
    missing_values: list[str] | None = None

    @model_validator(mode="after")
    def _no_leakage(self) -> "ClinicalSpec":
        features = set(self.numeric) | set(self.categorical)
        dup = set(self.numeric) & set(self.categorical)
        if dup:
            raise ValueError(f"columns listed as both numeric and categorical: {sorted(dup)}")
        leaked = features & set(self.leakage)
        if self.label and self.label.column in features:
            leaked.add(self.label.column)
        if self.survival:
            leaked |= features & {self.survival.time, self.survival.event}
        if leaked:
            raise ValueError(
                f"columns {sorted(leaked)} encode the label or outcome and cannot be model features; "
                "remove them from clinical.numeric/categorical (keep them in clinical.display to show them)"
            )
        for key in ("after_diagnosis", "expression_derived"):
            clash = features & set(getattr(self, key))
            if clash:
                raise ValueError(f"columns {sorted(clash)} are listed in clinical.{key} and as model features; "
                                 "a column is one or the other: remove it from clinical.numeric/categorical")
        return self

    def stored_text_columns(self) -> list[str]:
        """Columns stored as text on Patient nodes: categorical features, then the display-only ones."""
        return list(dict.fromkeys(self.categorical + self.display + self.after_diagnosis + self.expression_derived))


class MutationSpec(BaseModel):
    model_config = _STRICT
    #: Keep only these variant classes (None = all but ``exclude_variant_classes``).
    include_variant_classes: list[str] | None = None
    exclude_variant_classes: list[str] = NON_PROTEIN_ALTERING
    columns: MutationTableColumns = MutationTableColumns()
    #: How to treat genes with no panel information: "all_assayed" (every sequenced sample
    #: covers every gene seen in the cohort) or "observed" (a panel covers the genes seen
    #: mutated in its samples; a lower bound when panel gene lists are not given).
    panel_inference: Literal["observed", "all_assayed"] = "observed"


class GMTSource(BaseModel):
    model_config = _STRICT
    name: str
    path: Path
    #: Gene identifiers in the file: HGNC symbols or NCBI Entrez ids.
    gene_ids: Literal["symbol", "entrez"] = "symbol"
    #: How to make a stable pathway id: "column2" (e.g. Reactome R-HSA-…), "name" (Hallmark),
    #: or "wikipathways" (the WPnnnn inside the name).
    id_from: Literal["column2", "name", "wikipathways"] = "name"
    min_genes: int = 5
    max_genes: int = 500


class GenesSpec(BaseModel):
    model_config = _STRICT
    gene_info: Path | None = None
    intogen: Path | None = None
    oncokb: Path | None = None
    #: Explicit symbol mappings for ambiguous old symbols (e.g. MLL2: KMT2D), cohort-specific.
    aliases: dict[str, str] = {}


class GraphConfig(BaseModel):
    """Top-level config of one cohort."""

    model_config = _STRICT
    cohort: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    input: CBioPortalInput | TableInput = Field(discriminator="kind")
    clinical: ClinicalSpec
    treatments: list[TreatmentSpec] = []
    mutations: MutationSpec = MutationSpec()
    genes: GenesSpec = GenesSpec()
    pathways: list[GMTSource] = []
    #: Hyper-parameters and input policy of the models (graphonc.model.settings.ModelConfig).
    model: ModelConfig = ModelConfig()
    #: Free-form section read by the search stage; kept verbatim.
    search: dict = {}
    #: Radiomic features → RadiomicPhenotype nodes, HAS_PHENOTYPE edges, Patient features.
    radiomics: RadiomicsSpec | None = None

    #: Where this config was read from (set by load_config; not part of the YAML).
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("treatments")
    @classmethod
    def _unique_treatments(cls, v: list[TreatmentSpec]) -> list[TreatmentSpec]:
        names = [t.name for t in v]
        if len(names) != len(set(names)):
            raise ValueError(f"treatment names must be unique, got {names}")
        return v

    def hash(self) -> str:
        """sha256 of the canonical JSON of this config (paths as given)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def input_paths(self) -> dict[str, Path]:
        """Every input file this config reads, by a short role name."""
        paths: dict[str, Path] = {}
        for key, val in (("gene_info", self.genes.gene_info), ("intogen", self.genes.intogen),
                         ("oncokb", self.genes.oncokb)):
            if val is not None:
                paths[key] = val
        for p in self.pathways:
            paths[f"pathways:{p.name}"] = p.path
        if self.radiomics is not None:
            paths["radiomics:features"] = self.radiomics.features.path
        return paths


def _resolve_paths(cfg: GraphConfig, base: Path) -> GraphConfig:
    def res(p: Path | None) -> Path | None:
        if p is None:
            return None
        p = Path(os.path.expandvars(str(p))).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    inp = cfg.input
    if isinstance(inp, CBioPortalInput):
        inp.study_dir = res(inp.study_dir)
    else:
        inp.clinical = res(inp.clinical)
        inp.mutations = res(inp.mutations)
        inp.assayed_genes = res(inp.assayed_genes)
    cfg.genes.gene_info = res(cfg.genes.gene_info)
    cfg.genes.intogen = res(cfg.genes.intogen)
    cfg.genes.oncokb = res(cfg.genes.oncokb)
    for p in cfg.pathways:
        p.path = res(p.path)
    if cfg.radiomics is not None:
        cfg.radiomics.resolve_paths(res)
    return cfg


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(x) for x in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (misspelt?)"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{path}: key {key!r}: {msg}{more}. Fix the config and rerun."


def load_config(path: str | Path) -> GraphConfig:
    """Read, validate and resolve a cohort config.

    Raises:
        ConfigError: with the file and the first offending key.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found. Fix: give the path of a YAML file such as configs/metabric.yaml.")
    return parse_config(path.read_text(encoding="utf-8"), path.resolve())


def parse_config(text: str, path: Path) -> GraphConfig:
    """Validate config ``text`` as if read from ``path`` (relative paths resolve against its folder).

    Used for the verbatim copy a run keeps of its config, resolved against the original folder.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level.")
    try:
        cfg = GraphConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    cfg = _resolve_paths(cfg, path.parent)
    cfg.source_path = path
    return cfg
