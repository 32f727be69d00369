// A patient's mutation profile
// Which variants does a patient carry, in which genes (with oncogene / tumour-suppressor role),
// of which class and allele fraction, and how many other patients carry each?
// @param cohort: str  cohort name
// @param patient_id: str  the patient
MATCH (p:Patient {cohort: $cohort, id: $patient_id})-[h:HAS_MUTATION]->(m:Mutation)-[:IN_GENE]->(g:Gene)
RETURN m.id AS mutation, g.id AS gene, g.role AS role, m.variant_class AS variant_class, h.vaf AS vaf,
       m.n_patients - 1 AS other_carriers
ORDER BY gene ASC, mutation ASC
