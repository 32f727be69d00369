"""Similar-patient search: FAISS index, neighbours with reasons, quality evaluation."""
