// Most frequently mutated genes
// Which genes are mutated in the most patients, with their role and the share of assayed
// patients (those whose panel covers the gene) that carry a mutation?
// @param cohort: str  cohort name
// @param limit: int = 20  rows to return
MATCH (g:Gene {cohort: $cohort})<-[:IN_GENE]-(:Mutation)<-[:HAS_MUTATION]-(p:Patient)
WITH g, count(DISTINCT p) AS n_mutated
OPTIONAL MATCH (g)<-[:COVERS]-(:GenePanel)<-[:SEQUENCED_WITH]-(q:Patient)
WITH g, n_mutated, count(DISTINCT q) AS n_assayed
RETURN g.id AS gene, g.role AS role, n_mutated, n_assayed,
       CASE WHEN n_assayed > 0 THEN round(toFloat(n_mutated) / n_assayed, 4) END AS frequency
ORDER BY n_mutated DESC, gene ASC
LIMIT $limit
