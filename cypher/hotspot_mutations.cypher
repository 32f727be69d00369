// Recurrent variants (hotspots)
// Which exact variants recur in the most patients, and in genes of which role?
// @param cohort: str  cohort name
// @param min_patients: int = 5  smallest number of carriers to report
// @param limit: int = 25  rows to return
MATCH (m:Mutation {cohort: $cohort})-[:IN_GENE]->(g:Gene)
MATCH (p:Patient)-[:HAS_MUTATION]->(m)
WITH m, g, count(p) AS carriers
WHERE carriers >= $min_patients
RETURN m.id AS mutation, g.id AS gene, g.role AS role, m.variant_class AS variant_class, carriers
ORDER BY carriers DESC, mutation ASC
LIMIT $limit
