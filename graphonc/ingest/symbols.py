"""Gene symbol harmonisation through NCBI ``Homo_sapiens.gene_info``.

Sources name genes from different years (METABRIC's MLL2 is today's KMT2D, WikiPathways
lists Entrez ids, OncoKB already uses NHERF1). Everything is mapped to NCBI's current
``Symbol``. Rules, in order:

1. an explicit alias from the config (for ambiguous old symbols such as MLL2);
2. a current ``Symbol`` or ``Symbol_from_nomenclature_authority`` (MT-ATP6 → ATP6);
3. a ``Synonyms`` entry that points at exactly one gene; if it points at several, the
   protein-coding one when exactly one is; otherwise the symbol is *ambiguous* and kept
   as given (and counted, so the user can add an alias).

Tokens that map nowhere (pathogen proteins in Reactome, free-text labels) are reported
as unresolved; callers decide whether to keep or drop them.
"""
from __future__ import annotations

import gzip
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from graphonc.errors import InputError
from graphonc.ingest.tables import require_file
from graphonc.ingest.text import check_utf8

HUMAN_TAX_ID = "9606"


@dataclass
class SymbolMap:
    """Maps gene symbols / Entrez ids to current NCBI symbols."""

    symbols: dict[str, str]
    synonyms: dict[str, str]
    ambiguous: dict[str, list[str]]
    entrez: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def identity(cls, aliases: Mapping[str, str] | None = None) -> "SymbolMap":
        """A map that only applies aliases (used when no gene_info file is configured)."""
        return cls({}, {}, {}, {}, dict(aliases or {}))

    @property
    def has_reference(self) -> bool:
        return bool(self.symbols)

    def resolve(self, symbol: str) -> str | None:
        """Current symbol, or None when the token is unknown to gene_info."""
        s = symbol.strip()
        if s in self.aliases:
            return self.aliases[s]
        if not self.has_reference:
            return s
        if s in self.symbols:
            return self.symbols[s]
        if s in self.synonyms:
            return self.synonyms[s]
        if s in self.ambiguous:
            return s
        return None

    def resolve_many(self, symbols: Iterable[str]) -> dict[str, str | None]:
        return {s: self.resolve(s) for s in set(symbols)}

    def from_entrez(self, gene_id: str) -> str | None:
        return self.entrez.get(gene_id.strip())

    def harmonise_series(self, s: pd.Series) -> tuple[pd.Series, list[str]]:
        """Vectorised resolve over a Series of symbols; unknown tokens are kept as given.

        Returns the harmonised Series and the sorted list of tokens that were unknown.
        """
        mapping = self.resolve_many(s.dropna().unique())
        unknown = sorted(k for k, v in mapping.items() if v is None)
        full = {k: (v if v is not None else k) for k, v in mapping.items()}
        return s.map(full).astype(object), unknown


def load_gene_info(path: Path, aliases: Mapping[str, str] | None = None) -> SymbolMap:
    """Build a :class:`SymbolMap` from NCBI gene_info (plain or .gz)."""
    what = "NCBI gene_info file"
    require_file(path, what)
    gz = path.suffix == ".gz"
    if not gz:
        check_utf8(path, what)
    cols = ["#tax_id", "GeneID", "Symbol", "Synonyms", "type_of_gene", "Symbol_from_nomenclature_authority"]
    try:
        df = pd.read_csv(path, sep="\t", usecols=cols, dtype=str, keep_default_na=False, quoting=3,
                         encoding="utf-8-sig")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"the {what} is not a complete gzip file ({exc}).", file=path,
                         hint="download Homo_sapiens.gene_info.gz again.") from None
    except UnicodeDecodeError as exc:  # only inside a .gz: a plain file was checked above
        raise InputError(f"the {what} holds a byte that is not UTF-8 ({exc.reason}).", file=path,
                         hint="download Homo_sapiens.gene_info.gz again.") from None
    except ValueError as exc:  # pandas' parser errors, and columns that are not there
        raise InputError(f"not an {what}: {str(exc).splitlines()[0]}", file=path,
                         hint=f"give NCBI's Homo_sapiens.gene_info(.gz), with columns {cols}.") from None
    df = df[df["#tax_id"] == HUMAN_TAX_ID]
    symbols: dict[str, str] = {}
    for sym in df["Symbol"]:
        symbols[sym] = sym
    for sym, auth in zip(df["Symbol"], df["Symbol_from_nomenclature_authority"]):
        if auth and auth != "-" and auth not in symbols:
            symbols[auth] = sym
    coding = dict(zip(df["Symbol"], df["type_of_gene"] == "protein-coding"))
    targets: dict[str, set[str]] = defaultdict(set)
    for sym, syns in zip(df["Symbol"], df["Synonyms"]):
        if syns and syns != "-":
            for syn in syns.split("|"):
                if syn not in symbols:
                    targets[syn].add(sym)
    synonyms: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    for syn, tgt in targets.items():
        if len(tgt) == 1:
            synonyms[syn] = next(iter(tgt))
            continue
        pc = [t for t in tgt if coding.get(t)]
        if len(pc) == 1:
            synonyms[syn] = pc[0]
        else:
            ambiguous[syn] = sorted(tgt)
    entrez = dict(zip(df["GeneID"], df["Symbol"]))
    return SymbolMap(symbols, synonyms, ambiguous, entrez, dict(aliases or {}))
