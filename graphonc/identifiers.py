"""Names that become part of Cypher text: one validator, and safe keys for names from data.

Cypher takes values as parameters, but never labels, relationship types, property keys or
index names. Those are pasted into the query text, so a name that came from a table header
could end the identifier and run Cypher of its own (Neo4j even decodes ``\\u0060`` escapes
inside backtick-quoted names, so no escaping is safe). The rule here is therefore:

* every identifier pasted into Cypher passes :func:`assert_ident` where the text is built:
  it must match ``^[A-Za-z_][A-Za-z0-9_]*$``, or it is refused. Nothing is ever quoted;
* a table column whose name does not match gets a mapped key at build time
  (:func:`safe_keys`); the run's Parquet files and Neo4j hold the key, the run manifest
  holds the mapping (``column_keys``) so users keep seeing the original header.

How a name is mapped (:func:`safe_key`), deterministic and readable:

1. Unicode is decomposed (NFKD) and combining marks dropped, so ``é`` → ``e``;
2. every other non-ASCII letter or digit becomes ``u`` + its hex code point (``年`` → ``u5e74``);
3. every run of other characters (spaces, punctuation, backticks, control characters) becomes
   one ``_``; leading and trailing ``_`` are dropped;
4. a key starting with a digit gets the prefix ``c_``; an empty key becomes ``c``.

:func:`safe_keys` then makes keys unique within a table: names that are already valid keep
themselves, and a mapped key that is taken gets ``_2``, ``_3``, … in column order.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

from graphonc.errors import GraphoncError

#: Properties the Neo4j loader sets itself on every item: never a mapped column's key.
LOADER_KEYS = ("cohort", "load_id")
#: What a label, relationship type, property key or index name may look like.
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OTHER = re.compile(r"[^A-Za-z0-9_]+")


def is_ident(name: object) -> bool:
    return isinstance(name, str) and IDENT.fullmatch(name) is not None


def assert_ident(name: object, what: str = "identifier") -> str:
    """``name`` unchanged if it may be pasted into Cypher text, else :class:`GraphoncError`.

    The one check every label, relationship type, property key and index name passes right
    where Cypher text is assembled (a test walks the source to hold every assembly site to it).

    >>> assert_ident("AGE_AT_DIAGNOSIS")
    'AGE_AT_DIAGNOSIS'
    """
    if not is_ident(name):
        raise GraphoncError(f"{what} {name!r} cannot be used in a Cypher query: it must be a letter or '_' "
                            "followed by letters, digits or '_' (no spaces, quotes, backticks or other characters). "
                            "Fix: use such a name; table columns are mapped to such keys by build-graph, so a run "
                            "built by an older graphonc must be rebuilt.")
    return name


def safe_key(name: str) -> str:
    """A valid key for ``name`` (see the module doc); valid names are returned unchanged.

    >>> safe_key("AGE AT DIAGNOSIS"), safe_key("5yr survival"), safe_key("x` DETACH DELETE n //")
    ('AGE_AT_DIAGNOSIS', 'c_5yr_survival', 'x_DETACH_DELETE_n')
    """
    if is_ident(name):
        return name
    out = []
    for ch in unicodedata.normalize("NFKD", str(name)):
        if ch.isascii():
            out.append(ch)
        elif unicodedata.combining(ch):
            continue
        elif unicodedata.category(ch)[0] in "LN":
            out.append(f"_u{ord(ch):04x}_")
        else:
            out.append("_")
    key = _OTHER.sub("_", "".join(out))
    key = re.sub(r"_{2,}", "_", key).strip("_") or "c"
    return "c_" + key if key[0].isdigit() else key


def safe_keys(names: Sequence[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """Every name of ``names`` → a unique valid key (see the module doc).

    ``taken``: keys already in use that no mapped name may get (e.g. properties the loader
    sets itself). Names that are valid keys already keep themselves (and must not be in ``taken``).
    """
    used = set(taken)
    out: dict[str, str] = {}
    for n in names:  # valid names first: a mapped name never takes a column's own name
        if is_ident(n):
            out[n] = n
            used.add(n)
    for n in names:
        if n in out:
            continue
        base = key = safe_key(n)
        i = 2
        while key in used:
            key, i = f"{base}_{i}", i + 1
        out[n] = key
        used.add(key)
    return {n: out[n] for n in names}
