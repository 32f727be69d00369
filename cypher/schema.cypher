// graphonc schema: constraints and indexes
// What keeps loads idempotent and fast: every node is unique on (cohort, id) within its label, so
// two cohorts share one database without mixing; load_id indexes make stale-data cleanup cheap.
// graphonc load-neo4j runs these itself (graphonc.store.neo4j_load.schema_statements); a test
// checks this file says the same. The embedding vector index is created by `graphonc export`.
CREATE CONSTRAINT patient_key IF NOT EXISTS FOR (n:Patient) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX patient_load IF NOT EXISTS FOR (n:Patient) ON (n.load_id);
CREATE CONSTRAINT mutation_key IF NOT EXISTS FOR (n:Mutation) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX mutation_load IF NOT EXISTS FOR (n:Mutation) ON (n.load_id);
CREATE CONSTRAINT gene_key IF NOT EXISTS FOR (n:Gene) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX gene_load IF NOT EXISTS FOR (n:Gene) ON (n.load_id);
CREATE CONSTRAINT pathway_key IF NOT EXISTS FOR (n:Pathway) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX pathway_load IF NOT EXISTS FOR (n:Pathway) ON (n.load_id);
CREATE CONSTRAINT treatment_key IF NOT EXISTS FOR (n:Treatment) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX treatment_load IF NOT EXISTS FOR (n:Treatment) ON (n.load_id);
CREATE CONSTRAINT genepanel_key IF NOT EXISTS FOR (n:GenePanel) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX genepanel_load IF NOT EXISTS FOR (n:GenePanel) ON (n.load_id);
CREATE CONSTRAINT radiomicphenotype_key IF NOT EXISTS FOR (n:RadiomicPhenotype) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE INDEX radiomicphenotype_load IF NOT EXISTS FOR (n:RadiomicPhenotype) ON (n.load_id);
