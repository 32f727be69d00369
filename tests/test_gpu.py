"""GPU paths on real METABRIC: CUDA training and faiss-gpu search against their CPU counterparts.

Skipped on a machine without CUDA (CI has none); run them where a GPU is lent:
``pytest tests/test_gpu.py``. The session's trained model (conftest) is trained on CUDA there,
since training picks the GPU by default.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphonc.errors import GraphoncError
from graphonc.search.index import (GPU_MAX_K, PatientIndex, embedding_matrix, gpu_available, gpu_status, probe_in_child,
                                   read_embeddings)
from graphonc.search.similar import Filters, similar_patients

from conftest import FAST_MODEL

needs_faiss_gpu = pytest.mark.skipif(not gpu_available(), reason="needs CUDA and a faiss-gpu build")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def embeddings(metabric_trained):
    emb = read_embeddings(metabric_trained[0].root)
    return embedding_matrix(emb), emb["id"].to_numpy(object)


def _same_neighbours(a_rows, a_scores, b_rows, b_scores, tol=1e-4) -> float:
    """Share of queries whose k neighbours agree, up to ties: patients whose scores lie within
    ``tol`` of each other (inside the list or at its k-th place) may swap or trade places."""
    assert np.allclose(a_scores, b_scores, atol=tol)
    same = [set(ra[sa > sa[-1] + tol]) <= set(rb) and set(rb[sb > sb[-1] + tol]) <= set(ra)
            for ra, sa, rb, sb in zip(a_rows, a_scores, b_rows, b_scores)]
    return float(np.mean(same))


def test_a_gpu_probe_that_crashes_is_contained():
    """A faiss-gpu build without kernels for the GPU aborts its process: the probe's child, not ours."""
    assert probe_in_child("import os; os.abort()") == (False, "exit status -6")
    assert probe_in_child("raise SystemExit('no kernel image is available')") == (
        False, "no kernel image is available")
    assert probe_in_child("print('fine')") == (True, "exit status 0")


def test_gpu_search_where_faiss_cannot_use_one_is_a_clear_error_and_auto_falls_back(embeddings):
    x, ids = embeddings
    status = gpu_status()
    if status.usable:
        pytest.skip("faiss can search on this machine's GPU")
    with pytest.raises(GraphoncError, match="--device gpu: .*Fix: install faiss-gpu >= 1.15.1"):
        PatientIndex.build(x, ids, "flat", device="gpu")
    auto = PatientIndex.build(x, ids, "flat", device="auto")
    assert auto.device == "cpu"
    scores, _ = auto.search(x[:5], 1)
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4)  # and it searches


@needs_faiss_gpu
def test_flat_on_the_gpu_returns_the_cpu_neighbours(embeddings):
    x, ids = embeddings
    cpu = PatientIndex.build(x, ids, "flat", device="cpu")
    gpu = PatientIndex.build(x, ids, "flat", device="gpu")
    assert gpu.device == "gpu" and cpu.device == "cpu"
    s_cpu, r_cpu = cpu.search(x, 10)
    s_gpu, r_gpu = gpu.search(x, 10)
    assert np.allclose(s_gpu[:, 0], 1.0, atol=1e-4)  # each patient finds itself (or its exact twin)
    assert _same_neighbours(r_cpu, s_cpu, r_gpu, s_gpu) == 1.0


@needs_faiss_gpu
def test_k_beyond_the_gpu_selection_limit_falls_back_to_the_cpu_copy(embeddings):
    x, ids = embeddings
    assert len(ids) > GPU_MAX_K, "METABRIC has more patients than the GPU's k limit: the case under test"
    gpu = PatientIndex.build(x, ids, "flat", device="gpu")
    s, r = gpu.search(x[:3], len(ids))  # every patient, ranked: beyond the GPU's k-selection
    assert r.shape == (3, len(ids)) and (np.sort(r, 1) == np.arange(len(ids))).all()
    assert (np.diff(s, axis=1) <= 1e-6).all()


@needs_faiss_gpu
def test_ivf_on_the_gpu_recalls_the_exact_neighbours(embeddings):
    x, ids = embeddings
    exact = PatientIndex.build(x, ids, "flat", device="cpu")
    ivf = PatientIndex.build(x, ids, "ivf", device="gpu")
    assert ivf.device == "gpu"
    _, r_exact = exact.search(x, 10)
    _, r_ivf = ivf.search(x, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r_exact, r_ivf)])
    assert recall >= 0.95


@needs_faiss_gpu
def test_filtered_similar_on_the_gpu_matches_the_cpu(metabric_trained):
    from graphonc.search.index import build_index

    root = metabric_trained[0].root
    build_index(root, "flat", device="cpu")
    emb = read_embeddings(root)
    some = list(emb.loc[emb["split"] == "train", "id"][:25])  # labelled patients
    flt = Filters(same_label=True, alive_at_months=60.0)  # passed by a minority: the search widens
    on_cpu = similar_patients(root, some, 10, flt, device="cpu")
    on_gpu = similar_patients(root, some, 10, flt, device="gpu")
    for a, b in zip(on_cpu, on_gpu):
        ids_a = [n.id for n in a.neighbours]
        ids_b = [n.id for n in b.neighbours]
        assert len(ids_a) == 10 and ids_a == ids_b


@needs_cuda
def test_training_on_cuda_learns_as_well_as_on_the_cpu(metabric_trained, metabric_run, tmp_path):
    import shutil

    from graphonc.model.stages import train_stage

    run, on_gpu = metabric_trained
    assert on_gpu["device"].startswith("cuda")
    root = tmp_path / "cpu"
    shutil.copytree(metabric_run.root, root)
    on_cpu = train_stage(root, device="cpu", **FAST_MODEL)
    assert on_cpu["device"] == "cpu"
    for metric in ("harrell_c", "macro_f1"):  # same data and seed; GPU scatter sums differ in the last bits
        assert np.isfinite(on_gpu["validation"][metric])
        assert abs(on_gpu["validation"][metric] - on_cpu["validation"][metric]) < 0.06, metric
