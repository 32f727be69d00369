"""graphonc: a graph-neural-network patient-similarity engine for oncology."""

__version__ = "0.1.0"
