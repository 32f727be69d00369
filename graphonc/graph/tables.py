"""The one way graph tables are made: edge tables deduplicated and sorted by their keys.

Every builder (modalities, treatments, pathways) uses :func:`edge_table`, so rebuilding the
same inputs gives byte-identical Parquet files.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from graphonc.graph import schema as S


def edge_table(src: pd.Series, dst: pd.Series, **props) -> pd.DataFrame:
    """Edge table: first row of each (src, dst) pair, sorted by src then dst (NA last)."""
    df = pd.DataFrame({S.SRC: np.asarray(src, dtype=object), S.DST: np.asarray(dst, dtype=object), **props})
    key = np.zeros(len(df), dtype=np.int64)
    for col in (S.SRC, S.DST):  # one integer key per pair, ordered like the pair (sorted codes)
        codes, uniques = pd.factorize(df[col], sort=True)
        key = key * (len(uniques) + 1) + np.where(codes < 0, len(uniques), codes)
    _, first = np.unique(key, return_index=True)  # sorted keys, index of each one's first occurrence
    return df.iloc[first].reset_index(drop=True)


def per_patient(ids: pd.Series, values: pd.Series, fill, dtype) -> np.ndarray:
    """``values`` (indexed by patient id) aligned to ``ids``, ``fill`` where absent."""
    return values.reindex(ids.to_numpy()).fillna(fill).astype(dtype).to_numpy()
