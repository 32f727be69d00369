"""The run folder's layout and the Patient table's column names: the one place they are spelled.

Every stage asks :class:`RunLayout` where its folder and files are, and reads the Patient
table's fixed columns through the names below, so renaming a folder or a column is a change
here only (``tests/test_run_layout.py`` fails when a stage spells one by hand again)::

    <run>/
      manifest.json                              build-graph: version, hashes, counts, patient_columns
      config.yaml                                the config the run was built from, verbatim
      graph/nodes/<Label>.parquet                column ``id`` + properties
      graph/edges/<Src>__<TYPE>__<Dst>.parquet   columns ``src``, ``dst`` + properties
      model/                                     train: weights.pt, model.json, config.yaml, metrics.json,
                                                 embeddings.parquet, predictions.parquet, plots/, lineage.json
      features/                                  index --from features: embeddings.parquet, lineage.json
      index/                                     index: the FAISS index, lineage.json
      eval/                                      evaluate: folds, summary.json, model_config.yaml
      similarity/                                evaluate-similarity: per-fold rows, summary.json
      reports/<encoded id>.html                  report (reports/new/<name>.html: new patients)
      export/<format>/, export/embeddings_<method>.png   export

Foundation layer: imports only :mod:`graphonc.errors`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from graphonc.errors import GraphoncError

# ------------------------------------------------------------------------------ file names

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
LINEAGE = "lineage.json"
PARQUET = ".parquet"
EMBEDDINGS = "embeddings.parquet"
PREDICTIONS = "predictions.parquet"
WEIGHTS = "weights.pt"
MODEL_META = "model.json"
MODEL_CONFIG = "config.yaml"
SUMMARY = "summary.json"

# ------------------------------------------------------------------------------ stage folders

GRAPH, NODES, EDGES = "graph", "nodes", "edges"
MODEL = "model"
FEATURES = "features"
INDEX = "index"
EVAL = "eval"
SIMILARITY = "similarity"
REPORTS = "reports"
NEW_REPORTS = "new"
EXPORT = "export"

# ------------------------------------------------------------------------------ Patient columns

#: The overall-survival endpoint every cohort config maps to (``clinical.survival``).
OS = "os"
#: A diagnosis label column (``clinical.label``), when the cohort has one.
LABEL = "label"


def months(endpoint: str = OS) -> str:
    """Time-to-event column of an endpoint: ``months("os")`` → ``"os_months"``."""
    return f"{endpoint}_months"


def event(endpoint: str = OS) -> str:
    """Event column (1 = event, 0 = censored) of an endpoint: ``event("os")`` → ``"os_event"``."""
    return f"{endpoint}_event"


OS_MONTHS = months(OS)
OS_EVENT = event(OS)

# ------------------------------------------------------------------------------ report names

_SAFE = re.compile(r"[A-Za-z0-9._-]")
REPORT_SUFFIX = ".html"
#: Most file systems allow 255 bytes per name.
_MAX_NAME = 255


def _encode(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def report_file_name(patient_id: str) -> str:
    """``<encoded id>.html``: one per patient id, distinct for distinct ids and reversible.

    Every character outside ``[A-Za-z0-9._-]`` is percent-encoded (its UTF-8 bytes as ``%XX``), and
    so is a leading ``.`` (no hidden files, no ``.``/``..``): ``a/b`` → ``a%2Fb``, ``a_b`` →
    ``a_b``, ``.x`` → ``%2Ex``. ``%`` itself is encoded, so :func:`patient_of_report` inverts it
    exactly. On case-insensitive file systems ids differing only in case still collide; such a
    cohort should give ``report --out`` explicitly.
    """
    if not patient_id:
        raise GraphoncError("an empty patient id has no report file name. Fix: give the id of a run patient.")
    name = "".join(ch if _SAFE.fullmatch(ch) else _encode(ch) for ch in patient_id)
    if name.startswith("."):
        name = "%2E" + name[1:]
    name += REPORT_SUFFIX
    if len(name.encode()) > _MAX_NAME:
        raise GraphoncError(f"patient id {patient_id[:40]!r}… is too long for a file name. "
                            "Fix: give `graphonc report --out FILE.html`.")
    return name


def patient_of_report(name: str) -> str:
    """The patient id of a report file name made by :func:`report_file_name`."""
    if not name.endswith(REPORT_SUFFIX):
        raise GraphoncError(f"{name!r} is not a report file name (no {REPORT_SUFFIX}).")
    return unquote(name[: -len(REPORT_SUFFIX)], errors="strict")


# ------------------------------------------------------------------------------ the layout


@dataclass(frozen=True)
class RunLayout:
    """Where everything of the run folder ``root`` lives (paths only: nothing is read or made).

    >>> RunLayout(Path("runs/metabric")).predictions
    PosixPath('runs/metabric/model/predictions.parquet')
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # build-graph
    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def graph_dir(self) -> Path:
        return self.root / GRAPH

    @property
    def nodes_dir(self) -> Path:
        return self.graph_dir / NODES

    @property
    def edges_dir(self) -> Path:
        return self.graph_dir / EDGES

    def nodes(self, label: str) -> Path:
        """``graph/nodes/<Label>.parquet``."""
        return self.nodes_dir / f"{label}{PARQUET}"

    def edges(self, edge_name: str) -> Path:
        """``graph/edges/<Src>__<TYPE>__<Dst>.parquet`` (``edge_name``: :func:`graphonc.graph.schema.edge_name`)."""
        return self.edges_dir / f"{edge_name}{PARQUET}"

    # train
    @property
    def model_dir(self) -> Path:
        return self.root / MODEL

    @property
    def weights(self) -> Path:
        return self.model_dir / WEIGHTS

    @property
    def embeddings(self) -> Path:
        return self.model_dir / EMBEDDINGS

    @property
    def predictions(self) -> Path:
        return self.model_dir / PREDICTIONS

    def model_or(self, model_dir: str | Path | None) -> Path:
        """A ``--model`` folder when given, else this run's ``model/``."""
        return Path(model_dir) if model_dir is not None else self.model_dir

    # index
    @property
    def features_dir(self) -> Path:
        return self.root / FEATURES

    @property
    def index_dir(self) -> Path:
        return self.root / INDEX

    # evaluate, evaluate-similarity
    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL

    @property
    def similarity_dir(self) -> Path:
        return self.root / SIMILARITY

    # report
    @property
    def reports_dir(self) -> Path:
        return self.root / REPORTS

    def report(self, patient_id: str) -> Path:
        """``reports/<encoded id>.html`` (:func:`report_file_name`)."""
        return self.reports_dir / report_file_name(patient_id)

    def new_report(self, name: str) -> Path:
        """``reports/new/<name>.html``: a new patient's page (its own folder, so no cohort id collides)."""
        return self.reports_dir / NEW_REPORTS / f"{name}{REPORT_SUFFIX}"

    # export
    @property
    def exports_dir(self) -> Path:
        return self.root / EXPORT

    def export_dir(self, fmt: str) -> Path:
        """``export/<format>/``."""
        return self.exports_dir / fmt

    def projection_plot(self, method: str) -> Path:
        """``export/embeddings_<method>.png``."""
        return self.exports_dir / f"embeddings_{method}.png"

    @staticmethod
    def lineage(stage_dir: str | Path) -> Path:
        """``<stage folder>/lineage.json``: what a stage was made from (:mod:`graphonc.graph.lineage`)."""
        return Path(stage_dir) / LINEAGE
