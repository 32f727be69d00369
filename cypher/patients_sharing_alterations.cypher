// Patients sharing copy-number alterations and fusions
// Which patients carry the same amplifications, deep deletions (same gene, same call) and fusions as this one?
// @param cohort: str  cohort name
// @param patient_id: str  the patient to compare with
// @param limit: int = 25  rows to return
MATCH (me:Patient {cohort: $cohort, id: $patient_id})
CALL (me) {
  MATCH (me)-[a:HAS_CNA]->(g:Gene)<-[b:HAS_CNA]-(other:Patient)
  WHERE b.call = a.call AND other <> me
  RETURN other, g.id + ' ' + a.call AS alteration
  UNION
  MATCH (me)-[:HAS_FUSION]->(f:Fusion)<-[:HAS_FUSION]-(other:Patient)
  WHERE other <> me
  RETURN other, f.id AS alteration
}
WITH other, collect(alteration) AS shared
RETURN other.id AS patient, size(shared) AS n_shared, shared
ORDER BY n_shared DESC, patient ASC
LIMIT $limit
