"""The report's SVG figures: well-formed, one mark per input, data never markup."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from graphonc.report import bars_svg, km_svg

NS = {"s": "http://www.w3.org/2000/svg"}


def test_attribution_bars_one_bar_per_input_coloured_by_sign_and_escaped():
    labels = ["clinical: AGE_AT_DIAGNOSIS", "mutation: PIK3CA:p.H1047R", "gene: <script>alert(1)</script>"]
    values = [0.42, -0.17, 0.03]
    out = bars_svg.svg(labels, values, "MB-<b>0005</b>: risk")
    root = ET.fromstring(out)  # well-formed XML
    rects = root.findall("s:rect", NS)
    assert len(rects) == 3
    assert [r.get("fill") for r in rects] == [bars_svg.RAISES, bars_svg.LOWERS, bars_svg.RAISES]
    widths = [float(r.get("width")) for r in rects]
    assert widths[0] > widths[1] > widths[2]  # bar length follows |attribution|
    # bars start at the zero line: positive bars to its right, negative to its left
    zero = float(root.findall("s:line", NS)[0].get("x1"))
    assert abs(float(rects[0].get("x")) - zero) < 0.2 and abs(float(rects[1].get("x")) + widths[1] - zero) < 0.2
    assert "<script>" not in out and "<b>" not in out and "&lt;script&gt;" in out
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("<script>alert(1)</script>" in t for t in texts)  # shown as text, never run


def test_attribution_bars_of_zeros_and_of_one_input():
    for values in ([0.0, 0.0], [-3.5], [float("nan"), 0.2]):
        ET.fromstring(bars_svg.svg([f"x{i}" for i in range(len(values))], values, "t"))


def test_kaplan_meier_svg_is_well_formed_with_numbers_at_risk():
    rng = np.random.default_rng(0)
    t, e = rng.exponential(60, 80), rng.integers(0, 2, 80)
    a, b = km_svg.fit(t, e, "neighbours"), km_svg.fit(t * 1.5, e, "cohort <all>")
    out = km_svg.svg([(a, "#cf222e"), (b, "#57606a")], "overall survival")
    fig = out[: out.index("</svg>") + len("</svg>")]
    ET.fromstring(fig)
    assert "cohort &lt;all&gt;" in out and "cohort <all>" not in out
    assert a.at_risk(0) == 80 and a.at_risk(float(t.max()) + 1) == 0
