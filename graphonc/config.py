"""Cohort configs (``configs/*.yaml``) as validated pydantic models.

Everything cohort-specific lives in a config: which files, which clinical columns are
features, which column is the diagnosis label, which are survival time/event, which
treatments, which pathway sources, which mutation classes to keep. Relative paths are
resolved against the config file's folder. Errors name the offending key.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from graphonc.errors import ConfigError
from graphonc.paths import resolve_against
from graphonc.text import read_config_text
from graphonc.radiomics_config import RadiomicsSpec
from graphonc.validation import format_validation_error
from graphonc.model_config import ModelConfig

_STRICT = ConfigDict(extra="forbid")
#: A unit as shown beside a value ("years", "mm", "mmol/L", "10^9/L").
_UNIT = re.compile(r"^[A-Za-z0-9µ²³%/.^ ]{1,20}$")

#: Variant classes that do not change the protein (MAF ``Variant_Classification``).
NON_PROTEIN_ALTERING = [
    "Silent", "Intron", "3'UTR", "5'UTR", "3'Flank", "5'Flank", "IGR", "RNA", "Splice_Region", "lincRNA",
]


#: Data types a patient can be required to have been profiled for (``input.require``).
Assay = Literal["mutations", "cna", "sv"]


class SampleFilter(BaseModel):
    """Keep only the samples whose sample-file ``column`` is one of ``values`` (e.g. primary tumours)."""

    model_config = _STRICT
    column: str
    values: list[str]


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
    #: Discrete copy-number file (genes x samples: -2 deep deletion … 2 amplification, NA not
    #: profiled), e.g. ``data_CNA.txt``; None = no copy-number modality.
    cna: str | None = None
    #: Structural-variant file (cBioPortal SV format), e.g. ``data_sv.txt``; None = no fusions.
    sv: str | None = None
    #: Case lists naming the samples profiled for copy number / structural variants. The
    #: defaults are used when the file exists; a name set explicitly must exist; null = none.
    cna_case_list: str | None = "case_lists/cases_cna.txt"
    sv_case_list: str | None = "case_lists/cases_sv.txt"
    #: Keep only some samples (e.g. ``{column: SAMPLE_TYPE, values: [Primary]}``): their
    #: mutations, copy number, fusions and sample-level clinical columns.
    sample_filter: SampleFilter | None = None
    #: Patients must have been profiled for these data types; the others leave the cohort.
    require: list[Assay] = []

    @model_validator(mode="after")
    def _required_data_given(self) -> "CBioPortalInput":
        absent = [a for a in self.require if a != "mutations" and getattr(self, a) is None]
        if absent:
            raise ValueError(f"require lists {absent} but input.{absent[0]} (the data file) is not set")
        return self


class TableInput(BaseModel):
    """Plain tables: one clinical table (a row per patient) and a long mutation table."""

    model_config = _STRICT
    kind: Literal["tables"] = "tables"
    clinical: Path
    mutations: Path | None = None
    #: Optional long table patient_id, gene listing the genes each patient was assayed for.
    assayed_genes: Path | None = None
    patient_id_column: str = "patient_id"
    #: ``[mutations]``: only patients with a mutation row (or an assayed-genes row) stay in the cohort.
    require: list[Literal["mutations"]] = []


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


class OrdinalSpec(BaseModel):
    """A text column read as an ordered number: through ``map`` (case-insensitive) or a parser.

    ``parse: stage`` reads AJCC/FIGO-style stages: ``Stage IIIA`` → 3, ``IV`` → 4, ``Stage 2B`` → 2
    (the sub-stage letter is dropped, ``0``/``Tis`` → 0).
    """

    model_config = _STRICT
    map: dict[str, float] | None = None
    parse: Literal["stage"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "OrdinalSpec":
        if (self.map is None) == (self.parse is None):
            raise ValueError("give exactly one of 'map' (text → number) or 'parse: stage'")
        return self


class ClinicalSpec(BaseModel):
    model_config = _STRICT
    numeric: list[str] = []
    categorical: list[str] = []
    #: Text columns turned into ordered numeric model features (e.g. AJCC stage strings).
    ordinal: dict[str, OrdinalSpec] = {}
    #: Categories of a categorical feature seen in fewer than this many *training* patients are
    #: pooled into one "other" category by the model's feature encoder (0 = no pooling).
    pool_rare: int = Field(default=0, ge=0)
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
    #: Extra tokens that mean "no value" in the clinical files, added to the built-in ones
    #: (``NA``, ``[Not Available]``, ``Unknown`` … see ingest/tables.py DEFAULT_MISSING).
    missing_values: list[str] = []
    #: Units of numeric columns (``{AGE_AT_DIAGNOSIS: years, TUMOR_SIZE: mm}``), where the data's
    #: documentation states them: carried into the run manifest and shown beside the values (the
    #: new-patient form's labels, profiles, reports). Display only; values are never converted.
    units: dict[str, str] = {}

    @model_validator(mode="after")
    def _no_leakage(self) -> "ClinicalSpec":
        features = set(self.numeric) | set(self.categorical) | set(self.ordinal)
        dup = (set(self.numeric) & set(self.categorical)) | (set(self.ordinal) & (set(self.numeric) | set(self.categorical)))
        if dup:
            raise ValueError(f"columns listed twice among numeric, categorical and ordinal: {sorted(dup)}")
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
        # a units key close to a numeric entry: one of the two is misspelt and only the data's
        # header can tell which, so build-graph checks it after reading the columns
        # (graphonc.graph.clinical.patient_table); a key close to nothing is refused here
        for col, close in self.units_not_numeric():
            if close is None:
                raise ValueError(f"units names {col!r}, which is not a numeric column (clinical.numeric or "
                                 "clinical.ordinal)")
        for col, unit in self.units.items():
            if not _UNIT.match(unit):
                raise ValueError(f"units.{col}: {unit!r} is not a unit: up to 20 letters, digits, spaces and "
                                 "% / . ^ ² ³ µ (e.g. years, mm, mmol/L)")
        return self

    def units_not_numeric(self) -> list[tuple[str, str | None]]:
        """(units key, the closest numeric column or None) for each units key that is not a numeric column."""
        numeric = self.numeric_features()
        return [(col, next(iter(difflib.get_close_matches(col, numeric, n=1)), None))
                for col in self.units if col not in numeric]

    def numeric_features(self) -> list[str]:
        """Numeric model features: the numeric columns, then the ordinal ones."""
        return list(self.numeric) + [c for c in self.ordinal if c not in self.numeric]

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
    min_genes: int = Field(5, ge=0)
    max_genes: int = Field(500, ge=0)

    @model_validator(mode="after")
    def _size_range(self) -> "GMTSource":
        if self.min_genes > self.max_genes:
            raise ValueError(f"min_genes ({self.min_genes}) is larger than max_genes ({self.max_genes}), "
                             "which would drop every pathway")
        return self


class GenesSpec(BaseModel):
    model_config = _STRICT
    gene_info: Path | None = None
    intogen: Path | None = None
    oncokb: Path | None = None
    #: Explicit symbol mappings for ambiguous old symbols (e.g. MLL2: KMT2D), cohort-specific.
    aliases: dict[str, str] = {}


class Permissions(BaseModel):
    """Modes of the run folder's folders and files (octal strings). Runs hold patient data: the
    default is owner-only; e.g. ``folders: "0750", files: "0640"`` shares a run with the group."""

    model_config = _STRICT
    folders: str = "0700"
    files: str = "0600"

    @field_validator("folders", "files", mode="before")
    @classmethod
    def _octal(cls, v, info):
        if not isinstance(v, str) or not re.fullmatch(r"0?[0-7]{3}", v):
            raise ValueError(f"give an octal mode as a quoted string such as '0750' (YAML reads an unquoted 0750 "
                             f"as the number 488), got {v!r}")
        mode = int(v, 8)
        need = 0o700 if info.field_name == "folders" else 0o600
        if mode & need != need:
            raise ValueError(f"{v!r} must keep the owner's {'rwx' if need == 0o700 else 'rw'} bits")
        if mode & 0o002:
            raise ValueError(f"{v!r} makes patient data writable by everyone; drop the 'other' write bit")
        if info.field_name == "files" and mode & 0o111:
            raise ValueError(f"{v!r}: data files are not executable; drop the x bits")
        return f"{mode:04o}"


class SearchSpec(BaseModel):
    """Defaults of ``graphonc index`` for this cohort; an option given on the command line wins.

    A key left out (None) takes the index's own default (:class:`graphonc.search.index.IndexParams`,
    the one place those numbers live).
    """

    model_config = _STRICT
    #: Index kind: ``auto`` (exact flat below 50k patients, HNSW up to 2M, IVF-PQ above) or one of them.
    kind: Literal["auto", "flat", "hnsw", "ivf", "ivfpq"] = "auto"
    #: Where FAISS searches: ``auto`` (the GPU when CUDA and faiss-gpu are usable), ``cpu`` or ``gpu``.
    device: Literal["auto", "cpu", "gpu"] = "auto"
    #: HNSW links per node, and its build / search beam widths.
    hnsw_m: int | None = Field(default=None, ge=2)
    ef_construction: int | None = Field(default=None, ge=1)
    ef_search: int | None = Field(default=None, ge=1)
    #: IVF cells (default about sqrt(n)) and cells visited per query.
    nlist: int | None = Field(default=None, ge=1)
    nprobe: int | None = Field(default=None, ge=1)
    #: IVF-PQ sub-quantisers (must divide the embedding dimension) and bits per code.
    pq_m: int | None = Field(default=None, ge=1)
    pq_bits: int | None = Field(default=None, ge=1, le=16)


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
    #: Hyper-parameters and input policy of the models (graphonc.model_config.ModelConfig).
    model: ModelConfig = ModelConfig()
    #: Index defaults of the search stage (``graphonc index``).
    search: SearchSpec = SearchSpec()
    #: Radiomic features → RadiomicPhenotype nodes, HAS_PHENOTYPE edges, Patient features.
    radiomics: RadiomicsSpec | None = None
    #: Modes of the run's folders and files (default owner-only; see Permissions).
    permissions: Permissions = Permissions()

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
        """sha256 of the canonical JSON of this config (paths as given; permissions left out: they do
        not change what is built)."""
        blob = json.dumps(self.model_dump(mode="json", exclude={"permissions"}), sort_keys=True).encode()
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
    res = resolve_against(base)
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
    """One line naming the file and the first offending key; an unknown key gets the closest valid one."""
    return format_validation_error(path, exc, GraphConfig)


def load_config(path: str | Path) -> GraphConfig:
    """Read, validate and resolve a cohort config.

    Raises:
        ConfigError: with the file and the first offending key.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found. Fix: give the path of a YAML file such as configs/metabric.yaml.")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file. Fix: give the path of a YAML file such as "
                          "configs/metabric.yaml.")
    return parse_config(read_config_text(path), path.resolve())


def _refuse_nul(node, path: Path, key: str = "") -> None:
    """ConfigError naming the key of a string with a NUL character (YAML's ``"\\0"``): no file
    path or name can hold one, and the OS calls that meet it raise ValueError."""
    if isinstance(node, dict):
        for k, v in node.items():
            _refuse_nul(v, path, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _refuse_nul(v, path, f"{key}.{i}")
    elif isinstance(node, str) and "\x00" in node:
        raise ConfigError(f"{path}: key {key!r}: {node!r} contains a NUL character. Fix: correct the value.")


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
    _refuse_nul(raw, path)
    try:
        cfg = GraphConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    try:
        cfg = _resolve_paths(cfg, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    cfg.source_path = path
    return cfg
