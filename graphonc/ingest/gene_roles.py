"""Gene roles (oncogene / tumour suppressor / both / unknown) from IntOGen and OncoKB.

IntOGen's ``ROLE`` is per (gene, cohort): ``Act`` → oncogene, ``LoF`` → tumour suppressor,
``ambiguous`` → no call. OncoKB's ``Is Oncogene`` / ``Is Tumor Suppressor Gene`` flags are
taken as given. The union of calls decides: both flags → "both", none → "unknown".
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphonc.ingest.symbols import SymbolMap
from graphonc.ingest.tables import read_table

ROLES = ("oncogene", "tumour_suppressor", "both", "unknown")


def _role(onc: bool, tsg: bool) -> str:
    return "both" if onc and tsg else "oncogene" if onc else "tumour_suppressor" if tsg else "unknown"


def read_intogen(path: Path, symbols: SymbolMap) -> pd.DataFrame:
    """Columns gene, intogen_role (Act/LoF/ambiguous), intogen_cancer_types (';'-joined)."""
    t = read_table(path, what="IntOGen compendium", usecols=["SYMBOL", "ROLE", "CANCER_TYPE"],
                   required=["SYMBOL", "ROLE", "CANCER_TYPE"])
    df = pd.DataFrame({"gene": t.text("SYMBOL"), "role": t.text("ROLE"), "ct": t.text("CANCER_TYPE")})
    df = df.dropna(subset=["gene"])
    df["gene"], _ = symbols.harmonise_series(df["gene"])
    g = df.groupby("gene", sort=True)
    out = pd.DataFrame({
        "intogen_role": g["role"].agg(lambda s: ";".join(sorted(set(s.dropna())))),
        "intogen_cancer_types": g["ct"].agg(lambda s: ";".join(sorted(set(s.dropna())))),
    }).reset_index()
    return out


def read_oncokb(path: Path, symbols: SymbolMap) -> pd.DataFrame:
    """Columns gene, oncokb_oncogene, oncokb_tsg (bool)."""
    cols = ["Hugo Symbol", "Is Oncogene", "Is Tumor Suppressor Gene"]
    t = read_table(path, what="OncoKB cancer gene list", usecols=cols, required=cols)
    df = pd.DataFrame({
        "gene": t.text("Hugo Symbol"),
        "oncokb_oncogene": t.text("Is Oncogene").str.lower().eq("yes"),
        "oncokb_tsg": t.text("Is Tumor Suppressor Gene").str.lower().eq("yes"),
    }).dropna(subset=["gene"])
    df["gene"], _ = symbols.harmonise_series(df["gene"])
    return df.groupby("gene", as_index=False, sort=True)[["oncokb_oncogene", "oncokb_tsg"]].any()


def gene_roles(genes: pd.Series, intogen: pd.DataFrame | None, oncokb: pd.DataFrame | None) -> pd.DataFrame:
    """One row per gene: gene, role, role_intogen, role_oncokb, is_driver (in IntOGen)."""
    out = pd.DataFrame({"gene": sorted(set(genes))})
    if intogen is not None:
        out = out.merge(intogen, on="gene", how="left")
    else:
        out["intogen_role"] = None
        out["intogen_cancer_types"] = None
    if oncokb is not None:
        out = out.merge(oncokb, on="gene", how="left")
    else:
        out["oncokb_oncogene"] = pd.NA
        out["oncokb_tsg"] = pd.NA
    ir = out["intogen_role"].fillna("")
    i_onc, i_tsg = ir.str.contains("Act"), ir.str.contains("LoF")
    k_onc = out["oncokb_oncogene"].eq(True)
    k_tsg = out["oncokb_tsg"].eq(True)
    out["role"] = [_role(a or c, b or d) for a, b, c, d in zip(i_onc, i_tsg, k_onc, k_tsg)]
    out["role_intogen"] = [_role(a, b) if r else None for a, b, r in zip(i_onc, i_tsg, ir)]
    has_k = out["oncokb_oncogene"].notna()
    out["role_oncokb"] = [_role(a, b) if h else None for a, b, h in zip(k_onc, k_tsg, has_k)]
    out["is_driver"] = out["intogen_role"].notna()
    return out[["gene", "role", "role_intogen", "role_oncokb", "is_driver", "intogen_cancer_types"]]
