"""Cohorts given as plain tables (clinical CSV + long mutation table), built from real METABRIC rows."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from graphonc.cli import app
from graphonc.config import load_config
from graphonc.errors import InputError
from graphonc.graph import schema as S
from graphonc.graph.build import build_graph

from conftest import CONFIGS


@pytest.fixture()
def plain_cohort(tmp_path, data_dir):
    d = data_dir / "metabric"
    pat = pd.read_csv(d / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str).head(150)
    maf = pd.read_csv(d / "data_mutations_extended.txt", sep="\t", skiprows=1, dtype=str)
    maf = maf[maf["Tumor_Sample_Barcode"].isin(set(pat["PATIENT_ID"]))]
    clinical = pat.rename(columns={"PATIENT_ID": "patient_id"})[
        ["patient_id", "AGE_AT_DIAGNOSIS", "NPI", "ER_IHC", "CLAUDIN_SUBTYPE", "OS_MONTHS", "OS_STATUS"]]
    clinical.to_csv(tmp_path / "clinical.csv", index=False)
    muts = pd.DataFrame({"patient_id": maf["Tumor_Sample_Barcode"], "gene": maf["Hugo_Symbol"],
                         "protein_change": maf["HGVSp_Short"], "variant_class": maf["Variant_Classification"],
                         "vaf": 0.3})
    muts.to_csv(tmp_path / "mutations.tsv", sep="\t", index=False)
    base = yaml.safe_load((CONFIGS / "metabric.yaml").read_text())
    cfg = {
        "cohort": "plain",
        "input": {"kind": "tables", "clinical": "clinical.csv", "mutations": "mutations.tsv"},
        "clinical": {"numeric": ["AGE_AT_DIAGNOSIS", "NPI"], "categorical": ["ER_IHC"],
                     "label": {"column": "CLAUDIN_SUBTYPE", "missing_values": ["NC"]},
                     "survival": {"time": "OS_MONTHS", "event": "OS_STATUS"}},
        "genes": {k: str((CONFIGS / v).resolve()) if isinstance(v, str) else v for k, v in base["genes"].items()},
        "pathways": [{**p, "path": str((CONFIGS / p["path"]).resolve())} for p in base["pathways"][:2]],
    }
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "plain.yaml", clinical, muts


def test_plain_tables_build(plain_cohort):
    cfg_path, clinical, muts = plain_cohort
    g = build_graph(load_config(cfg_path))
    assert len(g.nodes[S.PATIENT]) == 150
    coding = muts[~muts["variant_class"].isin(["Silent", "Intron", "3'UTR", "5'UTR", "Splice_Region"])]
    assert len(g.edges[S.HAS_MUTATION]) == coding.drop_duplicates(["patient_id", "gene", "protein_change"]).shape[0]
    assert (g.edges[S.HAS_MUTATION]["vaf"] == 0.3).all()
    assert "KMT2D" in set(g.nodes[S.GENE]["id"]) or "MLL2" not in set(coding["gene"])
    assert g.nodes[S.PATIENT]["os_event"].sum() == (clinical["OS_STATUS"] == "DECEASED").sum()


def test_plain_tables_unknown_patient(plain_cohort):
    cfg_path, _, muts = plain_cohort
    muts.loc[muts.index[4], "patient_id"] = "NOBODY"
    muts.to_csv(cfg_path.parent / "mutations.tsv", sep="\t", index=False)
    with pytest.raises(InputError) as exc:
        build_graph(load_config(cfg_path))
    assert exc.value.line == 6 and exc.value.column == "patient_id" and "NOBODY" in str(exc.value)


def test_plain_tables_bad_vaf(plain_cohort):
    cfg_path, _, muts = plain_cohort
    muts["vaf"] = muts["vaf"].astype(object)
    muts.loc[muts.index[2], "vaf"] = 35
    muts.to_csv(cfg_path.parent / "mutations.tsv", sep="\t", index=False)
    result = CliRunner().invoke(app, ["build-graph", "-c", str(cfg_path), "-o", str(cfg_path.parent / "out")])
    assert result.exit_code == 2
    assert "mutations.tsv, line 4, column 'vaf'" in " ".join(result.output.split())


def test_cli_info(metabric_run):
    result = CliRunner().invoke(app, ["info", str(metabric_run.root)])
    assert result.exit_code == 0, result.output
    assert "Patient" in result.output and "2,509" in result.output and "HAS_MUTATION" in result.output
    assert "reactome" in result.output


def test_cli_info_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and "not a graphonc run folder" in result.output
