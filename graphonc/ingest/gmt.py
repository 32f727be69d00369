"""GMT gene-set files (Reactome, MSigDB Hallmark, WikiPathways).

A GMT line is ``name <TAB> description/url <TAB> gene <TAB> gene ...``. Gene tokens are
symbols or Entrez ids (WikiPathways) and are harmonised through a :class:`SymbolMap`;
tokens that are not human genes (Reactome's pathogen proteins, free-text labels) are dropped
and counted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from graphonc.config import GMTSource
from graphonc.errors import InputError
from graphonc.ingest.symbols import SymbolMap
from graphonc.ingest.tables import read_text_lines

_WP_ID = re.compile(r"%(WP\d+)%")


@dataclass
class GeneSets:
    """Pathways of one source: ``pathways`` (id, source, name, n_genes) and ``members`` (id, gene)."""

    pathways: pd.DataFrame
    members: pd.DataFrame
    dropped_tokens: int


def _pathway_id(src: GMTSource, name: str, col2: str, path, line: int) -> tuple[str, str]:
    """(stable id, readable name) for one GMT line."""
    if src.id_from == "column2":
        return f"{src.name}:{col2}", name
    if src.id_from == "wikipathways":
        m = _WP_ID.search(name)
        if not m:
            raise InputError("no WPnnnn id in the set name.", file=path, line=line, column="name",
                             hint="use id_from: name for this GMT source.")
        return f"{src.name}:{m.group(1)}", name.split("%", 1)[0]
    return f"{src.name}:{name}", name


def read_gmt(src: GMTSource, symbols: SymbolMap) -> GeneSets:
    """Parse one GMT file into pathway and membership tables (genes harmonised, deduplicated)."""
    lines = read_text_lines(src.path, f"GMT file of pathway source {src.name!r}")
    rows, members, dropped = [], [], 0
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise InputError("a GMT line needs a name, a description and at least one gene, tab-separated.",
                             file=src.path, line=i, hint="check the file is a GMT gene-set file.")
        pid, name = _pathway_id(src, parts[0].strip(), parts[1].strip(), src.path, i)
        genes = set()
        for tok in parts[2:]:
            tok = tok.strip()
            if not tok:
                continue
            sym = symbols.from_entrez(tok) if src.gene_ids == "entrez" else symbols.resolve(tok)
            if sym is None:
                dropped += 1
            else:
                genes.add(sym)
        rows.append((pid, src.name, name, len(genes)))
        members.extend((pid, g) for g in sorted(genes))
    pathways = pd.DataFrame(rows, columns=["id", "source", "name", "n_genes"])
    pathways = pathways.drop_duplicates("id")
    members_df = pd.DataFrame(members, columns=["id", "gene"]).drop_duplicates()
    return GeneSets(pathways, members_df, dropped)
