// Patients sharing a mutation with a given patient
// Which other patients carry at least one of the same variants (gene + protein change) as the
// query patient, ranked by how many they share, with their diagnosis and survival?
// @param cohort: str  cohort name (Patient.cohort)
// @param patient_id: str  the query patient
// @param limit: int = 25  rows to return
MATCH (p:Patient {cohort: $cohort, id: $patient_id})-[:HAS_MUTATION]->(m:Mutation)<-[:HAS_MUTATION]-(o:Patient)
WHERE o <> p
WITH o, m ORDER BY m.id
WITH o, collect(m.id) AS shared
RETURN o.id AS patient, size(shared) AS n_shared, shared AS mutations, o.label AS label,
       o.os_months AS os_months, o.os_event AS os_event
ORDER BY n_shared DESC, patient ASC
LIMIT $limit
