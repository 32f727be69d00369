// Two-hop neighbours through pathways
// Which patients have mutations in the same pathways as the query patient
// (patient-gene-pathway-gene-patient), even when they share no gene?
// @param cohort: str  cohort name
// @param patient_id: str  the query patient
// @param limit: int = 25  rows to return
MATCH (p:Patient {cohort: $cohort, id: $patient_id})-[:HAS_MUTATION]->(:Mutation)-[:IN_GENE]->(:Gene)
      -[:IN_PATHWAY]->(pw:Pathway)
WITH p, collect(DISTINCT pw) AS pathways
UNWIND pathways AS pw
MATCH (pw)<-[:IN_PATHWAY]-(:Gene)<-[:IN_GENE]-(:Mutation)<-[:HAS_MUTATION]-(o:Patient)
WHERE o <> p
WITH o, count(DISTINCT pw) AS shared_pathways, size(pathways) AS query_pathways
RETURN o.id AS patient, shared_pathways, query_pathways, o.label AS label
ORDER BY shared_pathways DESC, patient ASC
LIMIT $limit
