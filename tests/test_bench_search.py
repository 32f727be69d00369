"""scripts/bench_search.py: one small run of the search benchmark (no timing checks)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_search")


def test_search_benchmark_reports_recall_and_graphonc_path_answers(bench, tmp_path, capsys):
    report = bench.main(["--sizes", "3000", "--queries", "60", "--latency-queries", "30", "--rounds", "2",
                         "--clusters", "50", "--json-out", str(tmp_path / "search.json")])
    assert json.loads(capsys.readouterr().out) == report == json.loads((tmp_path / "search.json").read_text())
    by_kind = {r["kind"]: r for r in report["results"]}
    assert {"flat", "hnsw", "ivf"} <= set(by_kind)
    # recall is computed from graphonc's own path (self excluded) against exact search: exact is exact
    assert by_kind["flat"]["recall_at_10"] == 1.0
    assert by_kind["hnsw"]["recall_at_10"] >= 0.95
    for r in report["results"]:
        assert r["n"] == 3000 and r["batch_queries"] == 60
        for key in ("batch_s", "p50_ms", "p99_ms", "graphonc_p50_ms", "graphonc_own_single_ms",
                    "graphonc_own_batch_ms", "path_overhead_pct", "path_overhead_single_pct"):
            assert np.isfinite(r[key]), (r["kind"], key)
        assert r["p50_ms"] <= r["p99_ms"] and r["graphonc_own_single_ms"] > 0
        assert len(r["path_overhead_by_order_pct"]) == len(r["path_overhead_single_by_order_pct"]) == 2


def test_cached_stand_in_serves_each_query_its_own_answer(bench):
    """The stand-in that times graphonc's work alone must hand query i the answer FAISS gave query i."""
    import faiss

    scores = np.arange(12, dtype=np.float32).reshape(4, 3)
    rows = np.arange(12, dtype=np.int64).reshape(4, 3) * 10
    c = bench._Cached(scores, rows)
    s, r = np.empty((3, 3), np.float32), np.empty((3, 3), np.int64)
    c.search_c(3, None, 3, faiss.swig_ptr(s), faiss.swig_ptr(r))
    np.testing.assert_array_equal(r, rows[:3])
    s1, r1 = np.empty((1, 3), np.float32), np.empty((1, 3), np.int64)
    c.search_c(1, None, 3, faiss.swig_ptr(s1), faiss.swig_ptr(r1))
    np.testing.assert_array_equal(r1, rows[3:])
    c.search_c(3, None, 3, faiss.swig_ptr(s), faiss.swig_ptr(r))  # wraps around
    np.testing.assert_array_equal(s, scores[:3])
    c.search_c(3, None, 3, faiss.swig_ptr(s), faiss.swig_ptr(r))
    np.testing.assert_array_equal(r, rows[[3, 0, 1]])


def test_paired_overhead_is_taken_within_each_order_and_averaged(bench):
    # raw first in even pairs: graphonc second there (+1 over raw), first in odd pairs (+5)
    raw = [10.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    path = [11.0, 15.0, 11.0, 15.0, 11.0, 15.0]
    assert bench.paired_overhead_pct(path, raw) == (30.0, 10.0, 50.0)
    assert bench.paired_overhead_pct([12.0], [10.0]) == (20.0, 20.0, 20.0)  # a single pair
