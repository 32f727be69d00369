// Most frequently hit pathways in a diagnosis group
// Which pathways carry a mutation in the largest share of patients with a given label
// (e.g. subtype Basal)?
// @param cohort: str  cohort name
// @param label: str  diagnosis label (Patient.label), e.g. Basal
// @param limit: int = 20  rows to return
MATCH (member:Patient {cohort: $cohort, label: $label})
WITH count(member) AS n_group
MATCH (p:Patient {cohort: $cohort, label: $label})-[:HAS_MUTATION]->(:Mutation)-[:IN_GENE]->(:Gene)
      -[:IN_PATHWAY]->(pw:Pathway)
WITH n_group, pw, count(DISTINCT p) AS n_patients
RETURN pw.id AS pathway, pw.name AS name, pw.source AS source, n_patients, n_group,
       round(toFloat(n_patients) / n_group, 4) AS fraction
ORDER BY n_patients DESC, pathway ASC
LIMIT $limit
