"""Gene symbol harmonisation through NCBI ``Homo_sapiens.gene_info``.

Sources name genes from different years (METABRIC's MLL2 is today's KMT2D, WikiPathways
lists Entrez ids, OncoKB already uses NHERF1). Everything is mapped to NCBI's current
``Symbol``. Rules, in order:

1. an explicit alias from the config (for ambiguous old symbols such as MLL2);
2. a current ``Symbol`` or ``Symbol_from_nomenclature_authority`` (MT-ATP6 → ATP6);
3. a ``Synonyms`` entry that points at exactly one gene; if it points at several, the
   protein-coding one when exactly one is; otherwise the symbol is *ambiguous* and kept
   as given (and counted, so the user can add an alias);
4. for an all-upper-case token in cohort data (``fold_case``), the same lookups ignoring case (``C10ORF68``, as upper-casing
   exports write it, → the synonym ``C10orf68`` → ``CCDC7``), when exactly one gene answers.

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
from graphonc.text import check_utf8

HUMAN_TAX_ID = "9606"


@dataclass
class SymbolMap:
    """Maps gene symbols / Entrez ids to current NCBI symbols."""

    symbols: dict[str, str]
    synonyms: dict[str, str]
    ambiguous: dict[str, list[str]]
    entrez: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)
    _folded: dict[str, str | None] | None = field(default=None, repr=False, compare=False)

    def _case_folded(self) -> dict[str, str | None]:
        """Upper-cased symbol/synonym → current symbol (None where two genes answer), built on first use.

        Current symbols win over synonyms, as in :meth:`resolve`.
        """
        if self._folded is None:
            folded: dict[str, str | None] = {}
            for table in (self.symbols, self.synonyms):
                level: dict[str, str | None] = {}
                for key, target in table.items():
                    k = key.upper()
                    level[k] = target if level.get(k, target) == target else None
                for k, target in level.items():
                    folded.setdefault(k, target)
            self._folded = folded
        return self._folded

    @classmethod
    def identity(cls, aliases: Mapping[str, str] | None = None) -> "SymbolMap":
        """A map that only applies aliases (used when no gene_info file is configured)."""
        return cls({}, {}, {}, {}, dict(aliases or {}))

    @property
    def has_reference(self) -> bool:
        return bool(self.symbols)

    def resolve(self, symbol: str, fold_case: bool = False) -> str | None:
        """Current symbol, or None when the token is unknown to gene_info.

        ``fold_case`` enables rule 4, for cohort data (MAF, CNA, SV symbols) only: in pathway
        files upper-case tokens name viral proteins (Reactome's HCMV ``US12``, ``UL5``), which
        case-folding would turn into human ribosomal genes (uS12 = RPS23).
        """
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
        # only upper-cased tokens, the damage exports do: mixed-case tokens in pathway files
        # (viral proteins such as "nsp1") must not turn into human genes
        return self._case_folded().get(s) if fold_case and s.isupper() else None

    def resolve_many(self, symbols: Iterable[str], fold_case: bool = False) -> dict[str, str | None]:
        return {s: self.resolve(s, fold_case) for s in set(symbols)}

    def from_entrez(self, gene_id: str) -> str | None:
        return self.entrez.get(gene_id.strip())

    def harmonise_series(self, s: pd.Series, fold_case: bool = False) -> tuple[pd.Series, list[str]]:
        """Vectorised resolve over a Series of symbols; unknown tokens are kept as given.

        Returns the harmonised Series and the sorted list of tokens that were unknown.
        """
        mapping = self.resolve_many(s.dropna().unique(), fold_case)
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
