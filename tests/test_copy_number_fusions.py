"""Copy number and structural variants as graph modalities, on the real MSK prostate study.

Expected counts are computed here, independently, with pandas from the raw cBioPortal files
(CNA matrix, SV table, case lists, panel matrix), then compared with the built graph. The
masking tests rewrite the case lists / panel matrix of a temp copy of the study (the big
files are symlinked, not copied) so that "not profiled" actually happens.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from graphonc.config import load_config
from graphonc.errors import ConfigError, InputError
from graphonc.graph import schema as S
from graphonc.graph.build import build_graph
from graphonc.graph.hetero import to_hetero
from graphonc.ingest.alterations import read_case_list
from graphonc.search.similar import CohortFacts, explain_pair

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ------------------------------------------------------------------ independent expectations


def _sample_patient(study: Path) -> dict[str, str]:
    s = pd.read_csv(study / "data_clinical_sample.txt", sep="\t", comment="#", dtype=str)
    return dict(zip(s["SAMPLE_ID"], s["PATIENT_ID"]))


def _profiled(study: Path, case_list: str, matrix_column: str, candidates) -> set[str]:
    ids = set(candidates) & read_case_list(study / case_list)
    m = pd.read_csv(study / "data_gene_panel_matrix.txt", sep="\t", dtype=str, keep_default_na=False)
    return ids & set(m.loc[~m[matrix_column].isin(["", "NA"]), "SAMPLE_ID"])


def _panel_genes(study: Path) -> dict[str, set[str]]:
    out = {}
    for p in study.glob("data_gene_panel_*.txt"):
        if "matrix" in p.name:
            continue
        lines = dict(line.split(":", 1) for line in p.read_text().splitlines() if ":" in line)
        out[lines["stable_id"].strip()] = set(lines["gene_list"].split())
    return out


def _sample_panel(study: Path, column: str) -> dict[str, str]:
    m = pd.read_csv(study / "data_gene_panel_matrix.txt", sep="\t", dtype=str)
    return dict(zip(m["SAMPLE_ID"], m[column]))


def expected_cna(study: Path) -> pd.DataFrame:
    """(patient, gene, call) of amplifications / deep deletions after case-list and panel masking."""
    cna = pd.read_csv(study / "data_CNA.txt", sep="\t", index_col="Hugo_Symbol")
    long = cna.stack().rename("value").reset_index().set_axis(["gene", "sample", "value"], axis=1)
    long = long[long["sample"].isin(_profiled(study, "case_lists/cases_cna.txt", "cna", cna.columns))]
    long = long[(long["value"] >= 2) | (long["value"] <= -2)]
    genes, panel = _panel_genes(study), _sample_panel(study, "cna")
    on = [g in genes.get(panel[s], {g}) for s, g in zip(long["sample"], long["gene"])]
    long = long[on]
    long["patient"] = long["sample"].map(_sample_patient(study))
    long["call"] = long["value"].map(lambda v: "AMP" if v > 0 else "HOMDEL")
    long["abs"] = long["value"].abs()
    long = long.sort_values(["patient", "gene", "abs", "value"], ascending=[True, True, False, False])
    return long.drop_duplicates(["patient", "gene"])[["patient", "gene", "call"]]


def expected_fusions(study: Path) -> pd.DataFrame:
    """(patient, unordered partner pair) of somatic SVs of profiled samples with a partner on the panel."""
    sv = pd.read_csv(study / "data_sv.txt", sep="\t", dtype=str)
    sv = sv[sv["Sample_Id"].isin(_profiled(study, "case_lists/cases_sv.txt", "structural_variants",
                                            _sample_patient(study)))]
    genes, panel = _panel_genes(study), _sample_panel(study, "structural_variants")
    g1 = sv["Site1_Hugo_Symbol"].where(~sv["Site1_Hugo_Symbol"].str.contains(" ", na=False)).fillna("?")
    g2 = sv["Site2_Hugo_Symbol"].where(~sv["Site2_Hugo_Symbol"].str.contains(" ", na=False)).fillna("?")
    listed = [panel[s] not in genes or a in genes[panel[s]] or b in genes[panel[s]]
              for s, a, b in zip(sv["Sample_Id"], g1, g2)]
    pairs = pd.DataFrame({"patient": sv["Sample_Id"].map(_sample_patient(study)),
                          "pair": ["::".join(sorted((a, b))) for a, b in zip(g1, g2)]})[listed]
    return pairs.drop_duplicates()


def _unordered(fusion_ids: pd.Series) -> pd.Series:
    return fusion_ids.map(lambda f: "::".join(sorted(f.split("::"))))


# ------------------------------------------------------------------ the real study


def test_cna_edges_equal_raw_file(prostate_run, data_dir):
    exp = expected_cna(data_dir / "prostate_msk_2024")
    got = prostate_run.edges(S.HAS_CNA)
    assert len(got) == len(exp) > 5000
    assert got["call"].value_counts().to_dict() == exp["call"].value_counts().to_dict()
    assert set(got.loc[got["value"] == 2, "call"]) == {"AMP"} and set(got.loc[got["value"] == -2, "call"]) == {"HOMDEL"}
    # per patient and per gene, not just in total
    assert got.groupby(S.SRC).size().sort_index().equals(exp.groupby("patient").size().sort_index().rename_axis(S.SRC))
    ar = set(got.loc[(got[S.DST] == "AR") & (got["call"] == "AMP"), S.SRC])
    assert ar == set(exp.loc[(exp["gene"] == "AR") & (exp["call"] == "AMP"), "patient"]) and len(ar) > 200
    p = prostate_run.nodes(S.PATIENT).set_index(S.ID)
    assert p["n_cna"].sum() == len(got) and p["cna_profiled"].all()
    genes = prostate_run.nodes(S.GENE).set_index(S.ID)
    assert genes.loc["AR", "n_patients_amplified"] == len(ar)
    assert genes.loc["PTEN", "n_patients_deep_deleted"] > 200


def test_fusion_nodes_equal_raw_file(prostate_run, data_dir):
    exp = expected_fusions(data_dir / "prostate_msk_2024")
    has = prostate_run.edges(S.HAS_FUSION)
    assert len(has) == len(exp) > 1000
    # per patient (symbols are harmonised in the graph, e.g. WHSC1L1 → NSD3, so pairs are compared by count)
    assert has.groupby(S.SRC).size().sort_index().equals(exp.groupby("patient").size().sort_index().rename_axis(S.SRC))
    for pair in ("ERG::TMPRSS2", "TMPRSS2::TMPRSS2", "AR::AR", "ERG::FOXA1"):  # current symbols: exact sets
        assert set(has.loc[_unordered(has[S.DST]) == pair, S.SRC]) == set(exp.loc[exp["pair"] == pair, "patient"])
    fusions = prostate_run.nodes(S.FUSION).set_index(S.ID)
    # both orientations in the file (279 + 106 rows) are one node, in the majority orientation
    tmprss2_erg = set(exp.loc[exp["pair"] == "ERG::TMPRSS2", "patient"])
    assert "ERG::TMPRSS2" not in fusions.index
    assert fusions.loc["TMPRSS2::ERG", "n_patients"] == len(tmprss2_erg) > 300
    partners = prostate_run.edges(S.FUSION_PARTNER)
    assert set(partners.loc[partners[S.SRC] == "TMPRSS2::ERG", S.DST]) == {"TMPRSS2", "ERG"}
    assert set(partners.loc[partners[S.SRC] == "TMPRSS2::TMPRSS2", S.DST]) == {"TMPRSS2"}
    assert fusions.loc["TMPRSS2::TMPRSS2", "intragenic"]
    # free text in a symbol column is not a Gene node
    assert not prostate_run.nodes(S.GENE)[S.ID].str.contains(" ").any()


def test_model_sees_amplifications_apart_from_deletions(prostate_run):
    hg = to_hetero(prostate_run)
    got = prostate_run.edges(S.HAS_CNA)
    for call in ("AMP", "HOMDEL"):
        assert hg.data[(S.PATIENT, f"HAS_CNA_{call}", S.GENE)].edge_index.shape[1] == (got["call"] == call).sum()
    assert hg.data[S.HAS_FUSION].edge_index.shape[1] == len(prostate_run.edges(S.HAS_FUSION))
    assert hg.data[S.FUSION].x.shape[0] == len(prostate_run.nodes(S.FUSION))
    assert {"cna_profiled", "sv_profiled"} <= set(hg.feature_names[S.PATIENT])


def test_baselines_see_the_copy_number_and_fusions_the_graph_holds(prostate_run):
    """A fair comparison: the tabular baselines (and kNN / SNF / Jaccard) get amp/homdel/fusion columns,
    with a vocabulary fitted on the training patients only."""
    import numpy as np

    from graphonc.model.tabular import TabularFeatures
    from graphonc.search.quality import gene_sets

    ids = sorted(prostate_run.nodes(S.PATIENT)[S.ID])
    train, test = ids[: len(ids) // 2], ids[len(ids) // 2:]
    tf = TabularFeatures(min_patients=5).fit(prostate_run, train)
    cna, fus = prostate_run.edges(S.HAS_CNA), prostate_run.edges(S.HAS_FUSION)
    assert {"amp:AR", "homdel:PTEN", "fusion:TMPRSS2::ERG"} <= set(tf.alterations_)
    for name in tf.alterations_:  # each kept column: >= 5 training carriers
        kind, key = name.split(":", 1)
        carriers = (set(fus.loc[fus[S.DST] == key, S.SRC]) if kind == "fusion" else
                    set(cna.loc[(cna[S.DST] == key) & (cna["call"] == kind.upper()), S.SRC]))
        assert len(carriers & set(train)) >= 5, name
    X = tf.transform(prostate_run, test)
    col = tf.feature_names_.index("amp:AR")
    want = np.isin(test, cna.loc[(cna[S.DST] == "AR") & (cna["call"] == "AMP"), S.SRC])
    assert (X[:, col] == want).all()
    patient = cna.loc[(cna[S.DST] == "AR") & (cna["call"] == "AMP"), S.SRC].iloc[0]
    assert "amp:AR" in gene_sets(prostate_run)[patient]


def test_reasons_name_shared_amplification_and_fusion(prostate_run):
    facts = CohortFacts(prostate_run)
    cna = prostate_run.edges(S.HAS_CNA)
    a, b = sorted(cna.loc[(cna[S.DST] == "AR") & (cna["call"] == "AMP"), S.SRC])[:2]
    why = explain_pair(facts, facts.profile(a), facts.profile(b))
    assert "both carry an AR amplification" in [r["reason"] for r in why["shared_copy_number"]]
    fus = prostate_run.edges(S.HAS_FUSION)
    c, d = sorted(fus.loc[fus[S.DST] == "TMPRSS2::ERG", S.SRC])[:2]
    why = explain_pair(facts, facts.profile(c), facts.profile(d))
    assert {"fusion": "TMPRSS2::ERG", "reason": "both carry TMPRSS2::ERG"} in why["shared_fusions"]
    # an amplification and a deep deletion of the same gene are no shared reason
    homdel = set(cna.loc[(cna[S.DST] == "AR") & (cna["call"] == "HOMDEL"), S.SRC])
    if homdel:
        why = explain_pair(facts, facts.profile(a), facts.profile(sorted(homdel)[0]))
        assert not [r for r in why["shared_copy_number"] if r["gene"] == "AR"]


def test_export_columns_list_each_patients_alterations(prostate_run):
    from graphonc.export import _alteration_columns

    cna = prostate_run.edges(S.HAS_CNA)
    pid = cna[S.SRC].value_counts().index[0]
    cols = _alteration_columns(prostate_run, pd.Series([pid, "P-0000140"]))
    assert cols["copy_number"][0] == sorted(cna.loc[cna[S.SRC] == pid, S.DST] + ":" + cna.loc[cna[S.SRC] == pid, "call"])
    assert cols["cna_profiled"] == [True, True] and set(cols) == {"cna_profiled", "copy_number", "sv_profiled", "fusions"}


# ------------------------------------------------------------------ masking: not profiled ≠ not altered


def _masked_study(src: Path, out: Path, panel_file: str | None = None) -> tuple[Path, set[str], set[str]]:
    """A copy of ``src`` (symlinks) where some samples with alterations were not profiled.

    Returns (study, samples unprofiled for CNA, samples unprofiled for SV).
    """
    out.mkdir()
    (out / "case_lists").mkdir()
    for f in src.iterdir():
        if f.is_file() and f.name != "data_gene_panel_matrix.txt":
            os.symlink(f, out / f.name)
    cna = pd.read_csv(src / "data_CNA.txt", sep="\t", index_col="Hugo_Symbol")
    amp_samples = sorted(cna.columns[(cna.loc["AR"] == 2).to_numpy()])
    sv = pd.read_csv(src / "data_sv.txt", sep="\t", dtype=str)
    sv_samples = sorted(set(sv["Sample_Id"]))
    no_cna_by_matrix, no_cna_by_list = set(amp_samples[:20]), set(amp_samples[20:40])
    no_sv_by_matrix, no_sv_by_list = set(sv_samples[:25]), set(sv_samples[25:50])
    m = pd.read_csv(src / "data_gene_panel_matrix.txt", sep="\t", dtype=str)
    m.loc[m["SAMPLE_ID"].isin(no_cna_by_matrix), "cna"] = "NA"
    m.loc[m["SAMPLE_ID"].isin(no_sv_by_matrix), "structural_variants"] = "NA"
    m.to_csv(out / "data_gene_panel_matrix.txt", sep="\t", index=False)
    for name, drop in (("cases_cna.txt", no_cna_by_list), ("cases_sv.txt", no_sv_by_list)):
        text = (src / "case_lists" / name).read_text().splitlines()
        ids = read_case_list(src / "case_lists" / name) - drop
        body = [line for line in text if not line.startswith("case_list_ids:")]
        (out / "case_lists" / name).write_text("\n".join(body + ["case_list_ids: " + "\t".join(sorted(ids))]) + "\n")
    if panel_file:
        (out / panel_file[0]).write_text(panel_file[1])
    return out, no_cna_by_matrix | no_cna_by_list, no_sv_by_matrix | no_sv_by_list


def _config(study: Path, tmp: Path) -> Path:
    raw = yaml.safe_load((CONFIGS / "prostate_msk_2024.yaml").read_text())
    raw["input"]["study_dir"] = str(study)
    raw["pathways"] = []  # not what these tests are about, and the slowest part of a build
    for key in ("gene_info", "intogen", "oncokb"):
        raw["genes"][key] = str((CONFIGS / raw["genes"][key]).resolve())
    path = tmp / "prostate_masked.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def masked(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("masked")
    study, no_cna, no_sv = _masked_study(data_dir / "prostate_msk_2024", tmp / "study")
    return study, no_cna, no_sv, build_graph(load_config(_config(study, tmp)))


def test_unprofiled_samples_give_no_edges_and_are_flagged(masked):
    study, no_cna, no_sv, g = masked
    to_patient = _sample_patient(study)
    patients = g.nodes[S.PATIENT].set_index(S.ID)
    cna, fus = g.edges[S.HAS_CNA], g.edges[S.HAS_FUSION]
    for samples, flag, edges, n in ((no_cna, "cna_profiled", cna, "n_cna"), (no_sv, "sv_profiled", fus, "n_fusions")):
        lost = {to_patient[s] for s in samples}
        # patients with another, profiled sample keep it: only those with none are "not profiled"
        other = {to_patient[s] for s in to_patient if s not in samples and to_patient[s] in lost}
        unprofiled = lost - other
        assert len(unprofiled) >= 30
        assert not patients.loc[sorted(unprofiled), flag].any()
        assert (patients.loc[sorted(unprofiled), n] == 0).all()
        assert not set(edges[S.SRC]) & unprofiled
        assert patients[flag].sum() == len(patients) - len(unprofiled)
    assert len(cna) == len(expected_cna(study))
    assert len(fus) == len(expected_fusions(study))
    assert g.stats["cna"]["calls_of_unprofiled_samples"] > 0 and g.stats["sv"]["rows_of_unprofiled_samples"] > 0


def test_report_says_not_profiled_rather_than_none(masked, tmp_path):
    from graphonc.graph.run import GraphRun, write_graph_run
    from graphonc.report.html import _alterations_html

    study, no_cna, _, g = masked
    write_graph_run(tmp_path / "run", g, load_config(_config(study, tmp_path)), None, 0.0)
    run = GraphRun.open(tmp_path / "run")
    facts = CohortFacts(run)
    p = run.nodes(S.PATIENT)
    unprofiled = p.loc[~p["cna_profiled"], S.ID].iloc[0]
    clean = p.loc[p["cna_profiled"] & (p["n_cna"] == 0), S.ID].iloc[0]
    assert "not profiled" in _alterations_html(facts.profile(unprofiled), facts).split("Fusions")[0]
    assert "none found" in _alterations_html(facts.profile(clean), facts).split("Fusions")[0]


@pytest.mark.slow
def test_genes_off_the_samples_panel_are_not_linked(data_dir, tmp_path):
    src = data_dir / "prostate_msk_2024"
    cna = pd.read_csv(src / "data_CNA.txt", sep="\t", usecols=["Hugo_Symbol"])
    listed = sorted(set(cna["Hugo_Symbol"]) - {"AR", "ERG", "TMPRSS2"})
    panel = ("IMPACT468", "stable_id: IMPACT468\ndescription: test panel without AR, ERG, TMPRSS2\n"
                          "gene_list:\t" + "\t".join(listed) + "\n")
    study, _, _ = _masked_study(src, tmp_path / "study", panel_file=("data_gene_panel_IMPACT468.txt", panel[1]))
    g = build_graph(load_config(_config(study, tmp_path)))
    on_468 = {s for s, p in _sample_panel(study, "cna").items() if p == "IMPACT468"}
    to_patient = _sample_patient(study)
    only_468 = {to_patient[s] for s in on_468} - {to_patient[s] for s in to_patient if s not in on_468}
    cna_edges = g.edges[S.HAS_CNA]
    assert not set(cna_edges.loc[cna_edges[S.DST] == "AR", S.SRC]) & only_468
    assert len(cna_edges) == len(expected_cna(study))
    assert len(g.edges[S.HAS_FUSION]) == len(expected_fusions(study))
    assert g.stats["cna"]["calls_off_panel"] > 0 and g.stats["sv"]["rows_off_panel"] > 0


def test_bad_cna_value_names_line_and_sample(tmp_path):
    (tmp_path / "data_clinical_patient.txt").write_text("PATIENT_ID\tAGE\nP1\t50\nP2\t60\n")
    (tmp_path / "data_clinical_sample.txt").write_text("SAMPLE_ID\tPATIENT_ID\nS1\tP1\nS2\tP2\n")
    (tmp_path / "data_CNA.txt").write_text("Hugo_Symbol\tS1\tS2\nAR\t2\t0\nMYC\t0\tamp\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"cohort": "t", "input": {"kind": "cbioportal", "study_dir": str(tmp_path),
                                                            "cna": "data_CNA.txt"},
                                   "clinical": {"numeric": ["AGE"]}}))
    with pytest.raises(InputError) as e:
        build_graph(load_config(cfg))
    msg = str(e.value)
    assert "data_CNA.txt, line 3, column 'S2'" in msg and "'amp' is not a discrete copy-number value" in msg
    for value in ("inf", "1e308", "-3"):  # parsed as numbers, but no discrete call
        (tmp_path / "data_CNA.txt").write_text(f"Hugo_Symbol\tS1\tS2\nAR\t2\t0\nMYC\t0\t{value}\n")
        with pytest.raises(InputError, match=rf"line 3, column 'S2'.*'{value}' is not a discrete copy-number"):
            build_graph(load_config(cfg))
    (tmp_path / "data_CNA.txt").write_text("Hugo_Symbol\tS1\tS9\nAR\t2\t0\n")
    with pytest.raises(InputError, match="sample 'S9' is not in the clinical sample file"):
        build_graph(load_config(cfg))
    (tmp_path / "data_CNA.txt").write_text("Hugo_Symbol\tS1\tS2\nAR\t2\tNA\nMYC\t-2\t2\n")
    g = build_graph(load_config(cfg))
    assert sorted(zip(g.edges[S.HAS_CNA][S.SRC], g.edges[S.HAS_CNA][S.DST], g.edges[S.HAS_CNA]["call"])) == [
        ("P1", "AR", "AMP"), ("P1", "MYC", "HOMDEL"), ("P2", "MYC", "AMP")]
    # no case list here (the default name is absent) and no panel matrix: every sample in the file is profiled
    assert g.nodes[S.PATIENT]["cna_profiled"].all()
    # a case list named explicitly must exist; require needs the data file
    raw = yaml.safe_load(cfg.read_text())
    raw["input"]["cna_case_list"] = "case_lists/cases_cna.txt"
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"case_lists/cases_cna.txt: case list not found"):
        build_graph(load_config(cfg))
    raw["input"]["require"] = ["sv"]
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"key 'input.cbioportal'.*require lists \['sv'\] but input.sv"):
        load_config(cfg)
    # an SV file without its sample column
    (tmp_path / "data_sv.txt").write_text("Sample\tSite1_Hugo_Symbol\nS1\tERG\n")
    raw["input"].update({"require": [], "sv": "data_sv.txt", "cna_case_list": None})
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"data_sv.txt.*column 'Sample_Id' not found"):
        build_graph(load_config(cfg))
