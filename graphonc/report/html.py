"""The tumour-board page: one self-contained HTML file per query patient.

No JavaScript, no external resources: CSS is inline and the plots are inline SVG
(:mod:`graphonc.report.km_svg`, :mod:`graphonc.report.bars_svg`), so the file can be mailed
or opened offline. Every value taken from
the data is HTML-escaped.

Sections: the query patient's profile (clinical values, mutations with gene roles,
treatments, outcome, the model's prediction), the k nearest patients with the reasons,
Kaplan–Meier curves of the neighbours against the whole cohort (numbers at risk),
treatment outcomes among the neighbours, and the model's explanation for this patient
(integrated gradients, :mod:`graphonc.model.explain`).
"""
from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from graphonc import layout as L
import graphonc
from graphonc.errors import GraphoncError
from graphonc.graph.outputs import claim_file
from graphonc.graph.run import GraphRun, atomic_file
from graphonc.search.similar import CNA_WORDS, CohortFacts, Filters, SimilarResult, similar_patients

log = logging.getLogger("graphonc")

#: The absolute estimate shown beside the curves: survival at this many months (5 years).
LANDMARK_MONTHS = 60.0

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1400px;color:#1d2733;
     font-size:14px;line-height:1.4}
h1{font-size:22px;margin-bottom:2px} h2{font-size:18px;border-bottom:2px solid #d0d7de;padding-bottom:3px;margin-top:28px}
.sub{color:#57606a} .note{color:#57606a;font-size:12px}
table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #d0d7de;padding:4px 7px;vertical-align:top;text-align:left}
th{background:#f3f5f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:24px} .grid>div{flex:1 1 380px}
.tag{display:inline-block;background:#eef2f6;border-radius:3px;padding:0 5px;margin:1px 2px;font-size:12px}
.same{color:#1a7f37} .diff{color:#9a6700} .died{color:#cf222e} .alive{color:#1a7f37}
img{max-width:100%;height:auto;border:1px solid #d0d7de}
"""


def esc(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "–"
    if isinstance(v, float):
        return html.escape(f"{v:.4g}")
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = (), cls: str = "") -> str:
    """An HTML table; cells are already-escaped HTML snippets; ``cls`` a class name of ours (not data)."""
    num = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='num'>{c}</td>" if i in num else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    attr = f" class='{cls}'" if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tags(items: Iterable) -> str:
    return "".join(f"<span class='tag'>{esc(i)}</span>" for i in items) or "–"


def _status_html(months, event) -> str:
    if months is None:
        return "unknown"
    if event == 1:
        return f"<span class='died'>died at {months:.0f} months</span>"
    return f"<span class='alive'>alive at {months:.0f} months (last follow-up)</span>"


# ---------------------------------------------------------------------------------- sections


def _profile_section(res: SimilarResult, facts: CohortFacts, risk_pct: float | None) -> str:
    q = res.query
    inputs = facts.model_inputs  # q.clinical is keyed by the names users know (CohortFacts.shown)
    clin_rows = [(esc(c), esc(q.clinical.get(c)) + (f" {esc(facts.units[c])}" if c in facts.units
                                                    and q.clinical.get(c) is not None else ""),
                  "model input" if c in inputs else "shown only") for c in q.clinical]
    mi = facts.mutation_info
    mut_rows = []
    for m in sorted(q.mutations):
        gene = facts.gene_of_mutation.get(m, str(m).split(":", 1)[0])
        vc = mi.loc[m, "variant_class"] if m in mi.index and "variant_class" in mi.columns else None
        mut_rows.append((esc(m), esc(gene), esc(facts.gene_role.get(gene)), esc(vc)))
    pred = res.prediction or {}
    prob_rows = sorted((pred.get("probabilities") or {}).items(), key=lambda kv: -kv[1])
    pred_html = ""
    if pred:
        pct = f" ({risk_pct:.0f}th percentile of the cohort)" if risk_pct is not None else ""
        top_p = prob_rows[0][1] if prob_rows else None
        pred_html = (f"<p class='prediction'><b>Prediction</b> (the model's output, not a diagnosis): "
                     f"<b>{esc(pred.get('predicted_label'))}</b>"
                     f"{f' with probability {top_p:.2f}' if top_p is not None else ''}; predicted risk "
                     f"(log partial hazard): <b>{esc(pred.get('risk'))}</b>{pct}.</p>"
                     + (_table(["class", "probability"], [(esc(c), f"{p:.2f}") for c, p in prob_rows], [1])
                        if prob_rows else ""))
    extra = "".join(f"<li>{esc(name)}: {esc(v['months'])} months, event {esc(v['event'])}</li>"
                    for name, v in q.extra_survival.items())
    return f"""
<h2>{"New patient" if q.new else "Query patient"}</h2>
<div class='grid'>
 <div><h3>Clinical</h3>{_table(["column", "value", "use"], clin_rows)}</div>
 <div><h3>Diagnosis and outcome</h3>
  <p>Diagnosis label: <b>{esc(q.label)}</b></p>
  <p>Treatments: {_tags(q.treatments)}</p>
  <p>Overall survival: {_status_html(q.os_months, q.os_event)}</p>{f"<ul>{extra}</ul>" if extra else ""}
  <h3>Model prediction</h3>{pred_html or "<p class='note'>no predictions in the model folder</p>"}
 </div>
 <div><h3>Somatic mutations ({len(q.mutations)})</h3>
  {_table(["mutation", "gene", "gene role", "variant class"], mut_rows) if mut_rows else "<p>none recorded</p>"}
  {_alterations_html(q, facts)}
  {("<h3>Radiomic phenotypes</h3>" + _tags(f"{k} (p={v:.2f})" if v is not None else k
                                           for k, v in q.phenotypes.items())) if q.phenotypes else ""}
 </div>
</div>"""


def _alterations_html(q, facts: CohortFacts) -> str:
    """Copy-number calls and fusions of the query, or "not profiled" (which is not "none found")."""
    row = facts.patients.loc[q.id] if q.id in facts.patients.index else {}
    out = []
    for title, flag, items in (
            ("Copy number", "cna_profiled", [f"{g} {CNA_WORDS.get(c, c)}" for g, c in sorted(q.copy_number.items())]),
            ("Fusions", "sv_profiled", sorted(q.fusions))):
        if flag not in facts.patients.columns:
            continue  # the run has no such modality
        profiled = bool(row.get(flag)) if len(row) else q.assays.get(flag, bool(items))
        body = _tags(items) if items else ("<p>none found</p>" if profiled else "<p class='note'>not profiled</p>")
        out.append(f"<h3>{title} ({len(items)})</h3>{body}")
    return "".join(out)


def plain_reasons(n) -> str:
    """A neighbour's reasons as one sentence a tumour board reads aloud."""
    parts = []
    if n.shared_mutations:
        parts.append("the same variant" + ("s " if len(n.shared_mutations) > 1 else " ")
                     + ", ".join(m.replace(":", " ") for m in n.shared_mutations[:3]))
    other = [g["gene"] for g in n.shared_genes if not any(m.startswith(g["gene"] + ":") for m in n.shared_mutations)]
    if other:
        parts.append("a mutation in " + ", ".join(other[:4]) + " (different variants)")
    if n.shared_pathways and not parts:
        parts.append(f"{n.n_shared_pathways} pathways hit in both, e.g. {n.shared_pathways[0]['name']}")
    if n.clinical_similar:
        parts.append("similar " + ", ".join(c["column"] for c in n.clinical_similar[:5]))
    if n.shared_copy_number:
        parts.append("the same " + ", ".join(f"{c['gene']} {CNA_WORDS.get(c['call'], c['call'])}"
                                             for c in n.shared_copy_number[:3]))
    if n.shared_fusions:
        parts.append("the fusion " + ", ".join(f["fusion"] for f in n.shared_fusions[:2]))
    if n.shared_phenotypes:
        parts.append("the same imaging phenotype " + ", ".join(p["phenotype"] for p in n.shared_phenotypes))
    text = ("Both have " + "; ".join(parts)) if parts else "Close in the model's embedding only"
    if n.clinical_different:
        text += "; differ in " + ", ".join(c["column"] for c in n.clinical_different[:4])
    return text + "."


def _neighbour_section(res: SimilarResult) -> str:
    rows = []
    for n in res.neighbours:
        genes = _tags(f"{g['gene']} ({g['role']})" for g in n.shared_genes)
        pws = "".join(f"<span class='tag'>{esc(p['name'] or p['id'])}"
                      f"{' via ' + esc(', '.join(p['shared_genes'])) if p['shared_genes'] else ''}</span>"
                      for p in n.shared_pathways[:3])
        pws = f"{n.n_shared_pathways}: {pws}" if n.n_shared_pathways else "–"
        same = "".join(f"<span class='tag same'>{esc(c['column'])}={esc(c['neighbour'])}</span>"
                       for c in n.clinical_similar) or "–"
        diff = "".join(f"<span class='tag diff'>{esc(c['column'])}: {esc(c['query'])} → {esc(c['neighbour'])}</span>"
                       for c in n.clinical_different) or "–"
        radi = _tags(p["phenotype"] for p in n.shared_phenotypes) if n.shared_phenotypes else ""
        alt = _tags([f"{c['gene']} {CNA_WORDS.get(c['call'], c['call'])}" for c in n.shared_copy_number]
                    + [f["fusion"] for f in n.shared_fusions])
        rows.append((str(n.rank), esc(n.id), f"{n.score:.3f}", esc(n.label), esc(plain_reasons(n)),
                     _tags(n.shared_mutations), genes, alt,
                     pws + (f"<br>radiomics: {radi}" if radi else ""), same, diff, _tags(n.treatments),
                     _status_html(n.os_months, n.os_event)))
    filt = esc(res.filters.describe())
    return f"""
<h2>The {len(res.neighbours)} most similar patients</h2>
<p class='sub'>Cosine similarity of the GNN patient embeddings (FAISS {esc(res.index_kind)} index); filters: {filt}.
Reasons are read from the graph: identical variants, genes mutated in both (with the gene's role), the same
amplification or deep deletion and the same fusion (when the run has copy number / structural variants), pathways hit in
both (most specific first), and clinical values within half a cohort standard deviation (numbers) or equal
(categories).</p>
{_table(["#", "patient", "score", "label", "why similar", "shared mutations", "shared genes (role)",
         "shared copy number / fusions", "shared pathways",
         "clinical: similar", "clinical: different", "treatments", "outcome"], rows, [0, 2], cls="neighbours")}"""


def survival_endpoints(facts: CohortFacts) -> list[tuple[str, str, str]]:
    """(title, time column, event column) of overall survival and each extra endpoint (e.g. dss)."""
    out = [("Overall survival", L.OS_MONTHS, L.OS_EVENT)] if facts.has_survival else []
    names = {"dss": "Disease-specific survival", "pfs": "Progression-free survival", "dfs": "Disease-free survival"}
    for name in facts.extra_endpoints:
        if L.months(name) in facts.patients and L.event(name) in facts.patients:
            out.append((names.get(name, name.upper()), L.months(name), L.event(name)))
    return out


def landmark_survival(curve, at: float = LANDMARK_MONTHS) -> dict:
    """Kaplan–Meier survival at ``at`` months with its 95% CI (None when nobody is followed that long)."""
    if curve is None or curve.durations.max() < at:
        return {"estimate": None, "low": None, "high": None, "n": 0 if curve is None else curve.n}
    s, lo, hi = (float(v[0]) for v in curve.at(np.array([at])))
    return {"estimate": s, "low": lo, "high": hi, "n": curve.n}


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _km_section(res: SimilarResult, facts: CohortFacts) -> str:
    from graphonc.report import km_svg

    endpoints = survival_endpoints(facts)
    if not endpoints:
        return "<h2>Survival</h2><p>This cohort has no survival data.</p>"
    p = facts.patients
    nb = p.reindex([n.id for n in res.neighbours])
    figs, rows = [], []
    for title, tcol, ecol in endpoints:
        key = ("km", tcol, ecol)
        if key not in facts.memo:  # the cohort's curve is the same on every page
            facts.memo[key] = km_svg.fit(*(pd.to_numeric(p[c], errors="coerce").to_numpy(float) for c in (tcol, ecol)),
                                         "whole cohort")
        cohort = facts.memo[key]
        mine = km_svg.fit(*(pd.to_numeric(nb[c], errors="coerce").to_numpy(float) for c in (tcol, ecol)),
                          "nearest neighbours")
        figs.append("<div class='km-figure'>" + km_svg.svg(
            [(cohort, "#6e7781"), (mine, "#cf222e")],
            f"{title}: the {len(res.neighbours)} neighbours of {res.query.id} vs the whole cohort") + "</div>")
        a, b = landmark_survival(mine), landmark_survival(cohort)
        rows.append((esc(title), f"{_pct(a['estimate'])} ({_pct(a['low'])}–{_pct(a['high'])}), n={a['n']}",
                     f"{_pct(b['estimate'])} ({_pct(b['low'])}–{_pct(b['high'])}), n={b['n']:,}"))
    years = LANDMARK_MONTHS / 12
    return f"""
<h2>Survival of the neighbours</h2>
{_table(["endpoint", f"{years:g}-year survival among the neighbours (95% CI)",
         f"{years:g}-year survival, whole cohort"], rows)}
<div class='grid'>{''.join(figs)}</div>
<p class='note'>Kaplan–Meier estimates (lifelines) with 95% confidence bands; the table under each plot gives the
number at risk. With k = {len(res.neighbours)} the neighbours' estimates are very uncertain. These are observed
outcomes of earlier patients, not a prediction for this one.</p>"""


def treatment_outcomes(res: SimilarResult, facts: CohortFacts) -> pd.DataFrame:
    """Per Treatment node: neighbours treated / not, their deaths and median follow-up, and the cohort's rates."""
    nb_ids = [n.id for n in res.neighbours]
    nb = facts.patients.reindex(nb_ids)
    died = (pd.to_numeric(nb[L.OS_EVENT], errors="coerce") == 1).to_numpy() if L.OS_EVENT in nb else \
        np.zeros(len(nb_ids), bool)
    months = pd.to_numeric(nb[L.OS_MONTHS], errors="coerce") if L.OS_MONTHS in nb else pd.Series(np.nan, index=nb.index)
    if "treated_cohort" not in facts.memo:  # per treatment: (patients treated, their share of deaths), once
        p = facts.patients
        dead = set(p.index[pd.to_numeric(p[L.OS_EVENT], errors="coerce") == 1]) if L.OS_EVENT in p else set()
        cohort = {}
        for t in facts.treatment_names:
            ids = [i for i, ts in facts.treatments_of.items() if t in ts]
            cohort[t] = (len(ids), sum(i in dead for i in ids) / len(ids) if ids else None)
        facts.memo["treated_cohort"] = cohort
    rows = []
    for t in facts.treatment_names:
        treated = np.array([t in facts.treatments_of.get(i, ()) for i in nb_ids], bool)
        m = months[treated].dropna()
        n_cohort, share = facts.memo["treated_cohort"][t]
        rows.append({"treatment": t, "neighbours_treated": int(treated.sum()), "treated_died": int(died[treated].sum()),
                     "treated_median_followup_months": float(m.median()) if len(m) else None,
                     "neighbours_untreated": int((~treated).sum()), "untreated_died": int(died[~treated].sum()),
                     "cohort_treated": n_cohort, "cohort_treated_died_share": share})
    return pd.DataFrame(rows)


def _treatment_section(res: SimilarResult, facts: CohortFacts) -> str:
    if not facts.treatment_names:
        return "<h2>Treatment outcomes</h2><p>This cohort records no treatments.</p>"
    t = treatment_outcomes(res, facts)
    rows = [(esc(r.treatment), str(r.neighbours_treated), str(r.treated_died), esc(r.treated_median_followup_months),
             str(r.neighbours_untreated), str(r.untreated_died), f"{r.cohort_treated:,}",
             esc(None if r.cohort_treated_died_share is None else f"{100 * r.cohort_treated_died_share:.0f}%"))
            for r in t.itertuples()]
    return f"""
<h2>Treatment outcomes among the neighbours</h2>
{_table(["treatment", "neighbours treated", "of whom died", "their median follow-up (months)", "neighbours not treated",
         "of whom died", "cohort treated", "cohort treated: died"], rows, [1, 2, 3, 4, 5, 6, 7])}
<p class='note'>Counts, not effects: treatment was not randomised and the neighbour set is small.</p>"""


def _explanation_section(exp, top: int = 12) -> str:
    """The model's explanation (a :class:`graphonc.model.explain.Explanation`) as bars and tables."""
    from graphonc.report import bars_svg

    patient_id = exp.patient
    table = exp.table
    parts = ["<h2>Why the model says this</h2>",
             "<p class='sub'>Integrated-gradients attributions: positive values push the output up (higher risk, "
             "or more evidence for the predicted class). Clinical inputs are grouped by column; graph inputs are the "
             "mutations, genes, pathways and treatments the patient's embedding can see.</p>",
             *(f"<p class='sub'>{esc(note)}</p>" for note in exp.notes), "<div class='grid'>"]
    for target in [t for t in ("risk", "diagnosis") if t in set(table["target"])]:
        t = table[table["target"] == target]
        t = t.reindex(t["attribution"].abs().sort_values(ascending=False).index).head(top)
        label = "risk (log partial hazard)" if target == "risk" else \
            f"diagnosis: {exp.predicted_label}"
        bars = bars_svg.svg([f"{k}: {n}" for k, n in zip(t["kind"], t["name"])], t["attribution"].to_numpy(),
                            f"{patient_id}: {label}")
        rows = [(esc(r.kind), esc(r.name), esc(r.value), f"{r.attribution:+.4f}")
                for r in t.itertuples()]
        parts.append(f"<div><h3>{esc(label)}</h3>{bars}{_table(['kind', 'input', 'value', 'attribution'], rows, [3])}"
                     "</div>")
    parts.append("</div>")
    return "".join(parts)


def _graph_section(run: GraphRun) -> str:
    """The cohort graph's statistics (:mod:`graphonc.graph.stats`): structure, degrees, hubs."""
    from graphonc.graph import stats

    parts = ["<h2>The cohort graph</h2><p class='sub'>What the GNN learns from: the patient graph's size, how "
             "connected it is, and the genes and pathways that reach the most patients.</p><div class='grid'>"]
    for title, header, rows in stats.summary_rows(stats.of_run(run), hubs=5):
        numeric = [i for i, h in enumerate(header) if h in stats.NUMERIC_COLUMNS]
        parts.append(f"<div><h3>{esc(title)}</h3>{_table(header, ([esc(c) for c in r] for r in rows), numeric)}</div>")
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------------- the page


def notes_section(notes) -> str:
    """What could not be used for a new patient (a NewPatientNotes), said plainly; '' when nothing."""
    if notes is None:
        return ""
    items = [(what, getattr(notes, key)) for key, what in (
        ("unknown_genes", "Gene symbols not recognised (left out)"),
        ("genes_not_in_run", "Genes no patient of this cohort carries (left out: the model has no node for them)"),
        ("variants_not_in_run", "Variants new to this cohort (linked through their gene only)"),
        ("filtered_variants", "Variants of a class the cohort's config excludes (left out)"),
        ("ignored_copy_number", "Copy-number values that make no link (only amplifications and deep deletions do)"),
        ("fusions_not_in_run", "Fusions no patient of this cohort carries (linked through their partner genes)"),
        ("fusions_not_linked", "Fusions whose partner genes the model has no node for (left out)"),
        ("missing_inputs", "Model inputs not given (imputed with the cohort median or 'missing')"))
             if getattr(notes, key)]
    if not items:
        return ""
    lis = "".join(f"<li>{esc(what)}: {_tags(vals)}</li>" for what, vals in items)
    return f"<h2>Input notes</h2><ul class='notes'>{lis}</ul>"


def report_sections(facts: CohortFacts, res: SimilarResult, risk_pct: float | None, explanation=None,
                    notes=None) -> list[str]:
    """The report's sections as escaped HTML snippets (the CLI's file and the service's pages share them)."""
    body = [_profile_section(res, facts, risk_pct), notes_section(notes), _neighbour_section(res),
            _km_section(res, facts), _treatment_section(res, facts), _graph_section(facts.run)]
    if explanation is not None:
        body.append(_explanation_section(explanation))
    return [b for b in body if b]


def page(title: str, cohort: str, n_patients: int, sections: list[str]) -> str:
    """A self-contained HTML document around ``sections``."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="graphonc {esc(graphonc.__version__)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body>
<h1>{esc(title)}</h1>
<p class='sub'>graphonc {esc(graphonc.__version__)} · cohort {esc(cohort)} · {n_patients:,} patients ·
generated {esc(stamp)}. For discussion at the tumour board; not a treatment recommendation.</p>
{''.join(sections)}
</body></html>
"""


def render_report(run_dir: Path, patient_id: str, k: int = 10, filters: Filters = Filters(),
                  explain: bool = True, device: str = "auto") -> str:
    """The report of one cohort patient as an HTML string."""
    run = GraphRun.open(run_dir)
    facts = CohortFacts(run)
    res = similar_patients(run.root, [patient_id], k, filters, facts=facts, device=device)[0]
    risk_pct = None
    pred_path = run.layout.predictions
    if res.prediction.get("risk") is not None and pred_path.exists():
        risks = pd.read_parquet(pred_path, columns=["risk"])["risk"].to_numpy()
        risk_pct = float((risks < res.prediction["risk"]).mean() * 100)
    exp = None
    if explain and run.layout.weights.exists():  # a features-only index has no model
        from graphonc.model.explain import explain_patient

        exp = explain_patient(run.root, patient_id)
    return page(f"Similar patients: {patient_id} ({run.cohort})", run.cohort, len(facts.patients),
                report_sections(facts, res, risk_pct, exp))


def write_report(run_dir: Path, patient_id: str, out: Path | None = None, **kwargs) -> Path:
    """Render and write the report atomically (default ``<run>/reports/<encoded id>.html``, see
    :func:`graphonc.layout.report_file_name`). An existing ``out`` is only replaced when graphonc wrote it."""
    run = GraphRun.open(run_dir)
    if out is None:
        out = run.layout.report(patient_id)
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise GraphoncError(f"--out {out}: the report is an HTML page. Fix: give a path ending in .html.")
    claim_file(out)  # before the slow part
    page = render_report(run.root, patient_id, **kwargs)
    with atomic_file(out, claim=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
