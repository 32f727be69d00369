"""Node labels and relationship types of the graphonc patient graph.

The same names are used for Parquet file names, PyG ``HeteroData`` node/edge types and
Neo4j labels/relationship types, so a user meets one vocabulary everywhere.

    (:Patient)-[:HAS_MUTATION {vaf}]->(:Mutation)-[:IN_GENE]->(:Gene)-[:IN_PATHWAY]->(:Pathway)
    (:Patient)-[:RECEIVED]->(:Treatment)
    (:Patient)-[:SEQUENCED_WITH]->(:GenePanel)-[:COVERS]->(:Gene)
    (:Patient)-[:HAS_PHENOTYPE {p}]->(:RadiomicPhenotype)          (radiomics stage)
"""
from __future__ import annotations

PATIENT = "Patient"
MUTATION = "Mutation"
GENE = "Gene"
PATHWAY = "Pathway"
TREATMENT = "Treatment"
GENE_PANEL = "GenePanel"
RADIOMIC_PHENOTYPE = "RadiomicPhenotype"

NODE_TYPES = (PATIENT, MUTATION, GENE, PATHWAY, TREATMENT, GENE_PANEL, RADIOMIC_PHENOTYPE)

EdgeType = tuple[str, str, str]
HAS_MUTATION: EdgeType = (PATIENT, "HAS_MUTATION", MUTATION)
IN_GENE: EdgeType = (MUTATION, "IN_GENE", GENE)
IN_PATHWAY: EdgeType = (GENE, "IN_PATHWAY", PATHWAY)
RECEIVED: EdgeType = (PATIENT, "RECEIVED", TREATMENT)
SEQUENCED_WITH: EdgeType = (PATIENT, "SEQUENCED_WITH", GENE_PANEL)
COVERS: EdgeType = (GENE_PANEL, "COVERS", GENE)
HAS_PHENOTYPE: EdgeType = (PATIENT, "HAS_PHENOTYPE", RADIOMIC_PHENOTYPE)

EDGE_TYPES = (HAS_MUTATION, IN_GENE, IN_PATHWAY, RECEIVED, SEQUENCED_WITH, COVERS, HAS_PHENOTYPE)

#: Every node table has this id column; every edge table has src/dst.
ID, SRC, DST = "id", "src", "dst"


def edge_name(edge: EdgeType) -> str:
    """File stem of an edge table, e.g. ``Patient__HAS_MUTATION__Mutation``."""
    return "__".join(edge)


def parse_edge_name(stem: str) -> EdgeType:
    parts = stem.split("__")
    if len(parts) != 3:
        raise ValueError(f"not an edge table name: {stem!r}")
    return parts[0], parts[1], parts[2]
