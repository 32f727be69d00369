// Co-mutation counts
// Which genes are most often mutated in the same patients as a given gene?
// @param cohort: str  cohort name
// @param gene: str  gene symbol, e.g. PIK3CA
// @param limit: int = 20  rows to return
MATCH (g:Gene {cohort: $cohort, id: $gene})<-[:IN_GENE]-(:Mutation)<-[:HAS_MUTATION]-(p:Patient)
WITH DISTINCT g, p
MATCH (p)-[:HAS_MUTATION]->(:Mutation)-[:IN_GENE]->(g2:Gene)
WHERE g2 <> g
WITH g2, count(DISTINCT p) AS n_both
RETURN g2.id AS gene, g2.role AS role, n_both
ORDER BY n_both DESC, gene ASC
LIMIT $limit
