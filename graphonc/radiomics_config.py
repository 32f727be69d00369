"""Settings of the radiomics stages, validated with pydantic (an unknown key is an error naming it).

Two places hold them:

* ``configs/radiomics.yaml`` (:class:`RadiomicsParams`): the pyradiomics extraction settings
  (passed to ``RadiomicsFeatureExtractor`` verbatim), geometry handling, worker count and the
  default phenotype settings;
* a cohort config's ``radiomics:`` section (:class:`RadiomicsSpec`): where the cohort's feature
  table is, how its columns map to pyradiomics names, and the phenotype settings that
  ``build-graph`` uses.

It sits beside :mod:`graphonc.config`, below the radiomics package: the cohort config embeds the
``radiomics:`` section, and the radiomics stages read these settings, so neither package imports
the other's upper half (no config <-> radiomics import cycle).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graphonc.errors import ConfigError
from graphonc.text import read_config_text
from graphonc.validation import format_validation_error

_STRICT = ConfigDict(extra="forbid")


class GeometrySpec(BaseModel):
    """What to do when a mask's voxel grid differs from its image's.

    The mismatch is measured in mm: the largest distance between the physical positions of
    the first and last voxel centres of the two grids (so it covers origin shifts, spacing and
    size differences and rotations). Differences below 1e-3 mm are float noise and ignored.
    """

    model_config = _STRICT
    #: ``resample``: a mismatch up to ``tolerance_mm`` is fixed by resampling the mask onto the
    #: image grid (nearest neighbour); ``reject``: any mismatch fails the case.
    on_mismatch: Literal["resample", "reject"] = "resample"
    #: Largest mismatch (mm) that is resampled; beyond it the case is rejected.
    tolerance_mm: float = Field(default=2.0, ge=0)


class PhenotypeSpec(BaseModel):
    """Feature filtering, harmonisation and clustering into radiomic phenotypes."""

    model_config = _STRICT
    #: Feature names or shell patterns to use (``original_shape_*``); None = every feature column.
    features: list[str] | None = None
    #: Feature names or patterns to leave out.
    exclude: list[str] = []
    #: Drop a feature whose most frequent value covers at least this share of patients.
    near_constant_share: float = Field(default=0.95, gt=0, le=1)
    #: Drop a feature missing in more than this share of patients (others: median imputation).
    max_missing_share: float = Field(default=0.2, ge=0, le=1)
    #: ``skewed``: signed log1p of features whose |skewness| exceeds ``skew_threshold``.
    log_transform: Literal["none", "skewed"] = "skewed"
    skew_threshold: float = Field(default=1.0, ge=0)
    #: Of two features with |Spearman rho| above this, the one more correlated with the rest goes.
    max_correlation: float = Field(default=0.9, gt=0, le=1)
    #: Features (names or patterns) kept in preference when correlated with one that is not
    #: listed: readable ones such as the volume name a phenotype better than their proxies.
    prefer: list[str] = ["MeshVolume", "Sphericity", "Mean", "Entropy", "Variance"]
    #: ``zscore`` (cohort-wide), ``per_batch`` (z-score within each site/scanner), ``combat``
    #: (neuroCombat empirical Bayes, then cohort-wide z-score) or ``none``.
    harmonization: Literal["none", "zscore", "per_batch", "combat"] = "zscore"
    #: Manifest/feature-table column naming the site or scanner (needed by per_batch/combat).
    batch_column: str | None = None
    method: Literal["gmm", "kmeans"] = "gmm"
    k_min: int = Field(default=2, ge=1)
    k_max: int = Field(default=6, ge=1)
    #: How k is chosen: lowest BIC (gmm only) or highest silhouette.
    selection: Literal["bic", "silhouette"] = "bic"
    covariance_type: Literal["full", "diag", "tied", "spherical"] = "diag"
    #: Cluster on principal components explaining this share of variance (None = on the features).
    pca_variance: float | None = Field(default=None, gt=0, le=1)
    n_init: int = Field(default=5, ge=1)
    seed: int = 0
    #: A HAS_PHENOTYPE edge for every phenotype with membership probability ≥ this (the most
    #: likely phenotype always gets one).
    min_membership: float = Field(default=0.1, ge=0, le=1)
    #: How many distinguishing features a phenotype's description names.
    describe_top: int = Field(default=3, ge=1)
    #: Words for a feature's high and low values, overriding the defaults, e.g.
    #: ``{MeshVolume: [large, small]}`` (key: the name without ``original_<class>_``).
    descriptors: dict[str, tuple[str, str]] = {}

    @model_validator(mode="after")
    def _check(self) -> "PhenotypeSpec":
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) is below k_min ({self.k_min})")
        if self.harmonization in ("per_batch", "combat") and not self.batch_column:
            raise ValueError(f"harmonization {self.harmonization!r} needs batch_column (the site/scanner column)")
        if self.method == "kmeans" and self.selection == "bic":
            raise ValueError("selection 'bic' needs method 'gmm'; use selection: silhouette with kmeans")
        return self


class ExtractionSettings(BaseModel):
    """The ``pyradiomics:`` block, handed to ``RadiomicsFeatureExtractor`` as a parameter dict."""

    model_config = _STRICT
    setting: dict = {}
    imageType: dict = {"Original": {}}
    featureClass: dict | None = None
    voxelSetting: dict | None = None

    def as_params(self) -> dict:
        out = {"setting": dict(self.setting), "imageType": dict(self.imageType)}
        if self.featureClass is not None:
            out["featureClass"] = {k: (v or []) for k, v in self.featureClass.items()}
        if self.voxelSetting is not None:
            out["voxelSetting"] = dict(self.voxelSetting)
        return out

    def canonical(self) -> str:
        """Canonical JSON of the parameters (part of each case's cache key)."""
        return json.dumps(self.as_params(), sort_keys=True, default=str)


class RadiomicsParams(BaseModel):
    """``configs/radiomics.yaml``."""

    model_config = _STRICT
    pyradiomics: ExtractionSettings = ExtractionSettings()
    geometry: GeometrySpec = GeometrySpec()
    #: Worker processes for extraction; 0 = every core this process may use.
    workers: int = Field(default=0, ge=0)
    phenotypes: PhenotypeSpec = PhenotypeSpec()

    source_path: Path | None = Field(default=None, exclude=True)


class FeatureTableSpec(BaseModel):
    """A table of radiomic features: the ``features.parquet`` of ``graphonc radiomics extract``,
    or a published CSV/TSV of precomputed features (one row per patient, or per patient and ROI).
    """

    model_config = _STRICT
    path: Path
    #: Column holding the patient id.
    patient_id: str = "patient_id"
    #: Column naming the region of interest / case (several rows per patient), if any.
    roi_column: str | None = None
    #: Keep only rows whose ROI is one of these (e.g. the primary tumour ``GTV-1``).
    roi_values: list[str] | None = None
    #: Several rows left for one patient: ``error``, ``mean`` of the rows, or the ``largest`` ROI
    #: (by ``size_column``; default the shape volume feature).
    aggregate: Literal["error", "mean", "largest"] = "error"
    size_column: str | None = None
    #: Explicit renames, table column → pyradiomics name (``original_<class>_<Feature>``).
    columns: dict[str, str] = {}
    #: ``pyradiomics``: bare feature names (``Mean``, ``MeshVolume``) get their pyradiomics class
    #: prefix (``original_firstorder_Mean``); ``keep``: column names are used as they are.
    names: Literal["pyradiomics", "keep"] = "pyradiomics"
    #: Columns that are neither id nor features (ignored). Non-numeric columns are ignored anyway.
    ignore_columns: list[str] = []


class RadiomicsSpec(BaseModel):
    """The ``radiomics:`` section of a cohort config (read by ``build-graph``)."""

    model_config = _STRICT
    features: FeatureTableSpec
    phenotypes: PhenotypeSpec = PhenotypeSpec()
    #: A folder written by ``graphonc radiomics phenotype``: patients are assigned to its
    #: phenotypes without refitting. None = fit at build time on the cohort's patients
    #: (unsupervised: no labels or outcomes are used).
    phenotype_model: Path | None = None
    #: Put the selected, harmonised feature vector on Patient nodes (``rad_<feature>`` columns,
    #: model inputs with a ``radiomics_available`` indicator).
    patient_features: bool = True

    def resolve_paths(self, res: Callable[[Path | None], Path | None]) -> None:
        self.features.path = res(self.features.path)
        self.phenotype_model = res(self.phenotype_model)


def read_yaml(path: Path, what: str) -> dict:
    """The mapping at the top of a YAML file, or a ConfigError naming the file."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found. Fix: give the path of a YAML file such as configs/radiomics.yaml.")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a {what}. Fix: give the path of a YAML file such as "
                          "configs/radiomics.yaml.")
    try:
        raw = yaml.safe_load(read_config_text(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level.")
    return raw


def load_params(path: str | Path) -> RadiomicsParams:
    """Read and validate ``configs/radiomics.yaml`` (the pyradiomics block is checked by pyradiomics
    itself when the extractor is built).

    Raises:
        ConfigError: naming the file and the first offending key.
    """
    path = Path(path)
    raw = read_yaml(path, "radiomics params file")
    try:
        params = RadiomicsParams.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, RadiomicsParams, fix="Fix the file and rerun.")) from None
    params.source_path = path.resolve()
    return params


