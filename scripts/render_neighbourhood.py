"""Draw an exported neighbourhood (GraphML from ``graphonc export --neighbourhood``) as a PNG.

Rings by node type around the centre (mutations inside, then patients, then pathways, then
everything else), node size by its ``n_patients``/``n_cohort_genes`` when it has one, the
largest few of each ring labelled. Made for docs/img/pik3ca_neighbourhood.png::

    graphonc export --run runs/metabric -f graphml --neighbourhood Gene:PIK3CA --hops 1 --out pik3ca.graphml
    .venv/bin/python scripts/render_neighbourhood.py pik3ca.graphml docs/img/pik3ca_neighbourhood.png \\
        --centre Gene:PIK3CA --title "METABRIC: PIK3CA's 1-hop neighbourhood"
"""
from __future__ import annotations

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

RINGS = ["Mutation", "Patient", "Pathway"]
COLOURS = {"Gene": "#cf222e", "Mutation": "#0969da", "Pathway": "#1a7f37", "Patient": "#8250df",
           "Treatment": "#bf8700", "GenePanel": "#57606a", "RadiomicPhenotype": "#d4a72c"}


def weight(d: dict) -> float:
    return float(d.get("n_patients", d.get("n_cohort_genes", d.get("n_mutations", 1))) or 1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("graphml")
    ap.add_argument("png")
    ap.add_argument("--centre", required=True, help="node key of the centre, e.g. Gene:PIK3CA")
    ap.add_argument("--title", default=None)
    ap.add_argument("--labels", type=int, default=8, help="labelled nodes per ring")
    args = ap.parse_args(argv)

    g = nx.read_graphml(args.graphml, force_multigraph=True)
    types = sorted({d["node_type"] for _, d in g.nodes(data=True)} - {g.nodes[args.centre]["node_type"]},
                   key=lambda t: (RINGS.index(t) if t in RINGS else len(RINGS), t))
    pos = {args.centre: (0.0, 0.0)}
    labels = {args.centre: g.nodes[args.centre]["label"]}
    for ring, t in enumerate(types, start=1):
        members = sorted((n for n, d in g.nodes(data=True) if d["node_type"] == t and n != args.centre),
                         key=lambda n: (-weight(g.nodes[n]), n))
        # the labelled (heaviest) nodes at evenly spaced places of the ring, so their labels do not collide
        top = members[:args.labels]
        spots = sorted({round(j * len(members) / max(len(top), 1)) for j in range(len(top))})
        rest = iter(members[len(top):])
        fixed = dict(zip(spots, top))
        order = [fixed[i] if i in fixed else next(rest) for i in range(len(members))]
        for i, n in enumerate(order):
            a = 2 * math.pi * i / max(len(order), 1) + 0.5 * (ring - 1)  # rings start apart: labels interleave
            pos[n] = (ring * math.cos(a), ring * math.sin(a))
        for n in members[:args.labels]:
            d = g.nodes[n]
            labels[n] = (d.get("name") or d["label"]).removeprefix("PIK3CA:")[:50]
    fig, ax = plt.subplots(figsize=(13, 13), dpi=110)
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.12, arrows=False, width=0.6)
    for t in [g.nodes[args.centre]["node_type"], *types]:
        ns = [n for n, d in g.nodes(data=True) if d["node_type"] == t]
        sizes = [600 if n == args.centre else 12 + 6 * math.sqrt(weight(g.nodes[n])) for n in ns]
        nx.draw_networkx_nodes(g, pos, nodelist=ns, node_size=sizes, node_color=COLOURS.get(t, "#999999"),
                               ax=ax, label=f"{t} ({len(ns)})", alpha=0.85, linewidths=0)
    for n, text in labels.items():
        x, y = pos[n]
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=10 if n == args.centre else 8,
                    fontweight="bold" if n == args.centre else "normal",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    ax.legend(loc="lower left", fontsize=10, markerscale=0.6, frameon=False)
    ax.set_title(args.title or f"{args.centre}: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges",
                 fontsize=13)
    ax.set_axis_off()
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(args.png)


if __name__ == "__main__":
    main()
