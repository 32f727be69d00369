// Treatment outcomes
// For each treatment, how many patients (optionally of one diagnosis label) received it, how many
// died, and what was their mean follow-up?
// @param cohort: str  cohort name
// @param label: str = null  restrict to one diagnosis label (null = all patients)
MATCH (p:Patient {cohort: $cohort})-[:RECEIVED]->(t:Treatment)
WHERE ($label IS NULL OR p.label = $label) AND p.os_months IS NOT NULL
RETURN t.id AS treatment, count(p) AS n, toInteger(sum(p.os_event)) AS events,
       round(avg(p.os_months), 2) AS mean_months
ORDER BY treatment ASC
