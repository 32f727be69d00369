"""Property: every table reader and the config loader either reads a file or refuses it with
graphonc's own error (a :class:`GraphoncError`), whatever bytes it holds: never a traceback.

Inputs are drawn three ways: any bytes; any text; and table-shaped text built from each reader's
own column names and the values that broke readers before (``inf``, ``1e308``, ``2:MAYBE``,
stray separators and quotes, CR-only line ends, a BOM, NUL and non-UTF-8 bytes, control
characters in ids), seeded with the first lines of the real files in ../shared/data. Examples
are few per reader (the fast tier), with no deadline.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphonc.config import CBioPortalInput, ClinicalSpec, GMTSource, MutationTableColumns, TableInput, load_config
from graphonc.errors import GraphoncError
from graphonc.graph.clinical import patient_table
from graphonc import text
from graphonc.ingest.cbioportal import read_cbioportal, read_panel_file
from graphonc.ingest.gene_roles import read_intogen, read_oncokb
from graphonc.ingest.gmt import read_gmt
from graphonc.ingest.maf import read_maf
from graphonc.ingest.mutation_table import read_mutation_table
from graphonc.ingest.plain_tables import read_plain_tables
from graphonc.ingest.symbols import SymbolMap, load_gene_info
from graphonc.ingest.tables import read_table
from graphonc.radiomics.features import read_feature_table
from graphonc.radiomics.manifest import read_manifest
from graphonc.radiomics_config import FeatureTableSpec, load_params

from conftest import CONFIGS, DATA

#: Examples per reader: 40 in the fast tier (derandomised, so a run is repeatable); set
#: GRAPHONC_PROPERTY_EXAMPLES=2000 to search harder (random, as hypothesis normally is).
_N = int(os.environ.get("GRAPHONC_PROPERTY_EXAMPLES", "40"))
FAST = settings(max_examples=_N, deadline=None, derandomize="GRAPHONC_PROPERTY_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Cell values that broke, or could break, a reader.
NASTY = ["", " ", "NA", "nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e400", "0", "-3", "1500",
         "3.5", "1,5", "0x1F", "1:DECEASED", "0:LIVING", "2:MAYBE", "1:LIVING", "DECEASED", "LIVING", "yes", "Yes",
         "\"", "\"quoted\ttab\"", "a\"b", "#", "#comment", "MB-0001", "MB-0001", "p.H1047R", "TP53", "Act", "LoF",
         "é", "€", "\ufeff", "\u2028", "\x85", "\x0c", "\x1b[2J", "\x07", "MB-\x1b0001", "[/]", "[link=x]y",
         "$\\foo$", "-", "|", ";", "a b", "x" * 300]

SEPS = ["\t", ","]
EOLS = ["\n", "\r\n", "\r"]


def real_head(path: Path, n: int = 6) -> str:
    """The first ``n`` lines of a real file (a seed the mutations start from)."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return "".join(next(fh, "") for _ in range(n))


@st.composite
def tables(draw, columns: list[str], comment_lines: bool = False) -> bytes:
    """A delimited table over ``columns`` (plus noise columns), broken in a few random ways."""
    sep = draw(st.sampled_from(SEPS))
    eol = draw(st.sampled_from(EOLS))
    cols = draw(st.lists(st.sampled_from(columns + ["extra", "", "dup", "dup"]), min_size=0, max_size=len(columns) + 2))
    if draw(st.booleans()):
        cols = columns + cols  # usually every wanted column is there
    cell = st.one_of(st.sampled_from(NASTY), st.text(max_size=8))
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=len(cols) + 2), max_size=6))
    lines = []
    if comment_lines and draw(st.booleans()):
        lines += ["#" + sep.join(cols), "#" + draw(st.text(max_size=10))]
    lines.append(sep.join(cols))
    lines += [sep.join(r) for r in rows]
    data = eol.join(lines) + draw(st.sampled_from(["", eol]))
    raw = data.encode("utf-8", errors="surrogatepass")
    return draw(_damage(raw))


def _damage(raw: bytes):
    """Maybe a BOM, maybe a bad byte (non-UTF-8 or NUL) at a random place, maybe truncated."""
    return st.tuples(st.booleans(), st.sampled_from([None, b"\xff", b"\xe9", b"\xc3", b"\x00", b"\xed\xa0\x80"]),
                     st.integers(0, max(len(raw), 1)), st.booleans()).map(
        lambda t: (b"\xef\xbb\xbf" if t[0] else b"") + (raw[:t[2]] + t[1] + raw[t[2]:] if t[1] else raw)
        [: (t[2] if t[3] else None)])


def inputs(columns: list[str], seed: Path | None = None, comment_lines: bool = False):
    """Any bytes, any text, table-shaped text, or a damaged copy of the real file's first lines."""
    options = [st.binary(max_size=200), st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
               tables(columns, comment_lines)]
    if seed is not None:
        options.append(_damage(real_head(seed).encode()))
    return st.one_of(*options)


def reads_or_refuses(fn, *args) -> None:
    """The property: ``fn(*args)`` returns, or raises a GraphoncError (anything else fails the test)."""
    try:
        fn(*args)
    except GraphoncError:
        pass


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("property")


def _write(work: Path, name: str, data: bytes) -> Path:
    p = work / name
    p.write_bytes(data)
    return p


# ------------------------------------------------------------------ the readers

PATIENT_COLS = ["PATIENT_ID", "AGE_AT_DIAGNOSIS", "OS_MONTHS", "OS_STATUS", "ER_IHC"]
SPEC = ClinicalSpec(numeric=["AGE_AT_DIAGNOSIS"], categorical=["ER_IHC"],
                    survival={"time": "OS_MONTHS", "event": "OS_STATUS"})


@FAST
@given(data=inputs(PATIENT_COLS, DATA / "metabric" / "data_clinical_patient.txt", comment_lines=True))
def test_clinical_patient_file(work, data):
    study = work / "patient_study"
    shutil.rmtree(study, ignore_errors=True)
    study.mkdir()
    _write(study, "data_clinical_patient.txt", data)
    cfg = CBioPortalInput(study_dir=study, clinical_sample=None, gene_panel_matrix=None)

    def read_and_type():
        raw = read_cbioportal(cfg)
        patient_table(raw, SPEC, "c")

    reads_or_refuses(read_and_type)


@FAST
@given(data=inputs(["PATIENT_ID", "SAMPLE_ID", "TUMOR_SIZE"], DATA / "metabric" / "data_clinical_sample.txt",
                   comment_lines=True))
def test_clinical_sample_file(work, data):
    study = work / "sample_study"
    shutil.rmtree(study, ignore_errors=True)
    study.mkdir()
    (study / "data_clinical_patient.txt").write_text("PATIENT_ID\tAGE_AT_DIAGNOSIS\nMB-0001\t50\nMB-0002\t60\n")
    _write(study, "data_clinical_sample.txt", data)
    cfg = CBioPortalInput(study_dir=study, gene_panel_matrix=None)

    def read_and_type():
        raw = read_cbioportal(cfg)
        patient_table(raw, ClinicalSpec(numeric=["TUMOR_SIZE"]), "c")

    reads_or_refuses(read_and_type)


MAF_COLS = ["Hugo_Symbol", "Tumor_Sample_Barcode", "Variant_Classification", "HGVSp_Short", "HGVSc", "Chromosome",
            "Start_Position", "Reference_Allele", "Tumor_Seq_Allele2", "t_ref_count", "t_alt_count"]


@FAST
@given(data=inputs(MAF_COLS, DATA / "metabric" / "data_mutations_extended.txt", comment_lines=True))
def test_maf(work, data):
    reads_or_refuses(read_maf, _write(work, "data_mutations.txt", data))


@FAST
@given(data=inputs(["patient_id", "gene", "protein_change", "variant_class", "vaf"]))
def test_mutation_table(work, data):
    reads_or_refuses(read_mutation_table, _write(work, "mutations.tsv", data), MutationTableColumns())


@FAST
@given(data=st.one_of(inputs(["stable_id:", "gene_list:"], DATA / "metabric" / "data_gene_panel.txt"),
                      st.lists(st.sampled_from(["stable_id: P1", "gene_list:\tTP53\tBRCA1", "description: x",
                                                "stable_id:", "gene_list:", "gene_list: \x00", "é"]))
                      .map(lambda ls: "\n".join(ls).encode())))
def test_gene_panel_file(work, data):
    reads_or_refuses(read_panel_file, _write(work, "data_gene_panel.txt", data))


@FAST
@given(data=st.one_of(inputs(["name", "url", "TP53", "1956"], DATA / "pathways" / "h.all.v7.4.symbols.gmt"),
                      inputs(["WP%WP123%x", "url", "7157"], DATA / "pathways" / "wikipathways-20230410-gmt-Homo_sapiens.gmt")),
       id_from=st.sampled_from(["name", "column2", "wikipathways"]), gene_ids=st.sampled_from(["symbol", "entrez"]))
def test_gmt(work, data, id_from, gene_ids):
    src = GMTSource(name="s", path=_write(work, "sets.gmt", data), id_from=id_from, gene_ids=gene_ids)
    reads_or_refuses(read_gmt, src, SymbolMap.identity())


@FAST
@given(data=inputs(["SYMBOL", "ROLE", "CANCER_TYPE"], DATA / "genes" / "IntOGen_Compendium_Cancer_Genes_2020-02-02.tsv"))
def test_intogen(work, data):
    reads_or_refuses(read_intogen, _write(work, "intogen.tsv", data), SymbolMap.identity())


@FAST
@given(data=inputs(["Hugo Symbol", "Is Oncogene", "Is Tumor Suppressor Gene"],
                   DATA / "genes" / "OncoKB_cancerGeneList_2024-12-19.tsv"))
def test_oncokb(work, data):
    reads_or_refuses(read_oncokb, _write(work, "oncokb.tsv", data), SymbolMap.identity())


@FAST
@given(data=inputs(["#tax_id", "GeneID", "Symbol", "Synonyms", "type_of_gene", "Symbol_from_nomenclature_authority"],
                   DATA / "genes" / "Homo_sapiens.gene_info.gz"))
def test_gene_info(work, data):
    reads_or_refuses(load_gene_info, _write(work, "gene_info", data))


@FAST
@given(clinical=inputs(["patient_id", "AGE", "OS_MONTHS", "OS_STATUS"]),
       mutations=inputs(["patient_id", "gene", "protein_change", "variant_class", "vaf"]),
       assayed=st.one_of(st.none(), inputs(["patient_id", "gene"])))
def test_plain_tables(work, clinical, mutations, assayed):
    cfg = TableInput(clinical=_write(work, "clinical.csv", clinical), mutations=_write(work, "muts.csv", mutations),
                     assayed_genes=None if assayed is None else _write(work, "assayed.csv", assayed))
    spec = ClinicalSpec(numeric=["AGE"], survival={"time": "OS_MONTHS", "event": "OS_STATUS"})

    def read_and_type():
        raw = read_plain_tables(cfg, MutationTableColumns())
        patient_table(raw, spec, "c")

    reads_or_refuses(read_and_type)


RAD_COLS = ["id", "roi", "original_firstorder_Mean", "MeshVolume", "Contrast", "site"]


@FAST
@given(data=inputs(RAD_COLS, DATA / "radiomics" / "hn1" / "HN_Radiomics.csv"),
       aggregate=st.sampled_from(["error", "mean", "largest"]), roi=st.booleans())
def test_radiomics_feature_table(work, data, aggregate, roi):
    spec = FeatureTableSpec(path=_write(work, "features.csv", data), patient_id="id", aggregate=aggregate,
                            roi_column="roi" if roi else None)
    reads_or_refuses(read_feature_table, spec)


@FAST
@given(data=inputs(["case_id", "patient_id", "image", "mask", "label", "site"]))
def test_radiomics_manifest(work, data):
    reads_or_refuses(read_manifest, _write(work, "manifest.csv", data))


# ------------------------------------------------------------------ copy number, structural variants, case lists
# (graphonc/ingest/alterations.py, where the CNA/SV modality is merged; skipped where it is not)

PROSTATE = DATA / "prostate_msk_2024"
TO_PATIENT = {"S1": "P1", "S2": "P2", "P-0000001-T01-IM3": "P-0000001"}


@FAST
@given(data=inputs(["Hugo_Symbol", "Entrez_Gene_Id", "S1", "S2"], PROSTATE / "data_CNA.txt"))
def test_copy_number_file(work, data):
    alterations = pytest.importorskip("graphonc.ingest.alterations")
    reads_or_refuses(alterations.read_cna, _write(work, "data_CNA.txt", data), TO_PATIENT)


@FAST
@given(data=inputs(["Sample_Id", "Site1_Hugo_Symbol", "Site2_Hugo_Symbol", "Class", "Event_Info", "SV_Status"],
                   PROSTATE / "data_sv.txt"))
def test_structural_variant_file(work, data):
    alterations = pytest.importorskip("graphonc.ingest.alterations")
    reads_or_refuses(alterations.read_sv, _write(work, "data_sv.txt", data), TO_PATIENT)


@FAST
@given(data=inputs(["case_list_ids:", "stable_id:"], PROSTATE / "case_lists" / "cases_cna.txt"))
def test_case_list(work, data):
    alterations = pytest.importorskip("graphonc.ingest.alterations")
    reads_or_refuses(alterations.read_case_list, _write(work, "cases.txt", data))


# ------------------------------------------------------------------ configs


def _yaml_mutations():
    """The real METABRIC config with one key replaced by a hostile value, as YAML text."""
    real = yaml.safe_load((CONFIGS / "metabric.yaml").read_text())
    keys = [("cohort",), ("seed",), ("input", "study_dir"), ("input", "kind"), ("clinical", "numeric"),
            ("clinical", "survival", "time"), ("pathways", 0, "min_genes"), ("pathways", 0, "path"),
            ("genes", "aliases"), ("mutations", "panel_inference"), ("model",), ("treatments",)]
    values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                       st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                  st.text(max_size=5), max_size=2),
                       st.sampled_from(["\x00", "a\x00b", "~", "$HOME/x", "../../etc", "/", "é", "-1"]))

    def put(key_value):
        (key, value) = key_value
        cfg = yaml.safe_load(yaml.safe_dump(real))
        node = cfg
        for k in key[:-1]:
            node = node[k]
        node[key[-1]] = value
        return yaml.safe_dump(cfg, allow_unicode=True).encode("utf-8", "surrogatepass")

    return st.tuples(st.sampled_from(keys), values).map(put)


@FAST
@given(data=st.one_of(inputs(["cohort:", "input:", "clinical:"], CONFIGS / "metabric.yaml"), _yaml_mutations()))
def test_config_loader(work, data):
    reads_or_refuses(load_config, _write(work, "cfg.yaml", data))


@FAST
@given(data=inputs(["pyradiomics:", "geometry:", "workers:"], CONFIGS / "radiomics.yaml"))
def test_radiomics_params_loader(work, data):
    reads_or_refuses(load_params, _write(work, "params.yaml", data))


# ------------------------------------------------------------------ the UTF-8 check itself


@FAST
@given(data=st.binary(max_size=64), chunk=st.integers(1, 9))
def test_streamed_utf8_check_agrees_with_the_whole_file_check(work, data, chunk, monkeypatch_module):
    """check_utf8 reads in chunks (a character or CRLF may straddle two); it must name the same
    line, column and offset as decoding the whole file at once, at any chunk size."""
    monkeypatch_module.setattr(text, "_CHUNK", chunk)
    p = _write(work, "any.txt", data)
    whole = streamed = None
    try:
        text.decode(data, p)
    except GraphoncError as exc:
        whole = (exc.line, exc.column, str(exc))
    try:
        text.check_utf8(p)
    except GraphoncError as exc:
        streamed = (exc.line, exc.column, str(exc))
    assert streamed == whole


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_read_table_reads_the_real_files_unchanged(data_dir):
    """The strict checks accept every real table the project ships with."""
    for path, required in [(data_dir / "metabric" / "data_clinical_patient.txt", ["PATIENT_ID"]),
                           (data_dir / "metabric" / "data_clinical_sample.txt", ["SAMPLE_ID", "PATIENT_ID"]),
                           (data_dir / "genes" / "OncoKB_cancerGeneList_2024-12-19.tsv",
                            ["Hugo Symbol", "Is Oncogene", "Is Tumor Suppressor Gene"]),
                           (data_dir / "radiomics" / "hn1" / "HN_Radiomics.csv", ["id"])]:
        assert len(read_table(path, required=required).df) > 100
