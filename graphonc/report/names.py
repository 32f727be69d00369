"""Report file names: one per patient id, distinct for distinct ids and reversible.

The encoding belongs to the run layout (:func:`graphonc.layout.report_file_name`); this module
keeps the report layer's name for it.
"""
from __future__ import annotations

from graphonc.layout import REPORT_SUFFIX as SUFFIX, patient_of_report, report_file_name

__all__ = ["SUFFIX", "patient_of_report", "report_file_name"]
