// Stored similar patients
// Which patients did a model find most similar to the query patient (SIMILAR_TO written back by
// graphonc), with their diagnosis and outcome?
// @param cohort: str  cohort name
// @param patient_id: str  the query patient
// @param model: str  model name the neighbours were written with
MATCH (p:Patient {cohort: $cohort, id: $patient_id})-[r:SIMILAR_TO {model: $model}]->(o:Patient)
RETURN r.rank AS rank, o.id AS patient, round(r.score, 4) AS score, o.label AS label,
       o.os_months AS os_months, o.os_event AS os_event
ORDER BY rank ASC
