"""Node labels and relationship types of the graphonc patient graph.

The same names are used for Parquet file names, PyG ``HeteroData`` node/edge types and
Neo4j labels/relationship types, so a user meets one vocabulary everywhere.

    (:Patient)-[:HAS_MUTATION {vaf}]->(:Mutation)-[:IN_GENE]->(:Gene)-[:IN_PATHWAY]->(:Pathway)
    (:Patient)-[:RECEIVED]->(:Treatment)
    (:Patient)-[:SEQUENCED_WITH]->(:GenePanel)-[:COVERS]->(:Gene)
    (:Patient)-[:HAS_PHENOTYPE {p}]->(:RadiomicPhenotype)          (radiomics stage)
    (:Patient)-[:HAS_CNA {value, call}]->(:Gene)                   (copy number: AMP / HOMDEL)
    (:Patient)-[:HAS_FUSION {sv_class}]->(:Fusion)-[:FUSION_PARTNER]->(:Gene)   (structural variants)
"""
from __future__ import annotations

PATIENT = "Patient"
MUTATION = "Mutation"
GENE = "Gene"
PATHWAY = "Pathway"
TREATMENT = "Treatment"
GENE_PANEL = "GenePanel"
RADIOMIC_PHENOTYPE = "RadiomicPhenotype"
FUSION = "Fusion"

NODE_TYPES = (PATIENT, MUTATION, GENE, PATHWAY, TREATMENT, GENE_PANEL, RADIOMIC_PHENOTYPE, FUSION)

EdgeType = tuple[str, str, str]
HAS_MUTATION: EdgeType = (PATIENT, "HAS_MUTATION", MUTATION)
IN_GENE: EdgeType = (MUTATION, "IN_GENE", GENE)
IN_PATHWAY: EdgeType = (GENE, "IN_PATHWAY", PATHWAY)
RECEIVED: EdgeType = (PATIENT, "RECEIVED", TREATMENT)
SEQUENCED_WITH: EdgeType = (PATIENT, "SEQUENCED_WITH", GENE_PANEL)
COVERS: EdgeType = (GENE_PANEL, "COVERS", GENE)
HAS_PHENOTYPE: EdgeType = (PATIENT, "HAS_PHENOTYPE", RADIOMIC_PHENOTYPE)
HAS_CNA: EdgeType = (PATIENT, "HAS_CNA", GENE)
HAS_FUSION: EdgeType = (PATIENT, "HAS_FUSION", FUSION)
FUSION_PARTNER: EdgeType = (FUSION, "FUSION_PARTNER", GENE)

EDGE_TYPES = (HAS_MUTATION, IN_GENE, IN_PATHWAY, RECEIVED, SEQUENCED_WITH, COVERS, HAS_PHENOTYPE, HAS_CNA, HAS_FUSION,
              FUSION_PARTNER)

#: An edge table with this column is split by its value into one model edge type per value
#: (``HAS_CNA`` → ``HAS_CNA_AMP``, ``HAS_CNA_HOMDEL``): message-passing layers ignore edge
#: properties, and an amplification must not read like a deletion.
EDGE_SUBTYPE = "call"

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
