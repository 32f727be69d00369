// Survival of patients with a gene altered vs. wild type
// Among patients with survival data whose gene panel covers the gene (not assayed is not wild
// type), how many had the gene mutated, how many died, and how long were they followed?
// @param cohort: str  cohort name
// @param gene: str  gene symbol, e.g. TP53
MATCH (g:Gene {cohort: $cohort, id: $gene})
MATCH (p:Patient {cohort: $cohort})-[:SEQUENCED_WITH]->(:GenePanel)-[:COVERS]->(g)
WHERE p.os_months IS NOT NULL
WITH DISTINCT g, p
WITH p, EXISTS { (p)-[:HAS_MUTATION]->(:Mutation)-[:IN_GENE]->(g) } AS mutated
RETURN CASE WHEN mutated THEN 'mutated' ELSE 'wild type' END AS status, count(p) AS n,
       toInteger(sum(p.os_event)) AS events, round(avg(p.os_months), 2) AS mean_months,
       round(percentileCont(p.os_months, 0.5), 2) AS median_months
ORDER BY status
