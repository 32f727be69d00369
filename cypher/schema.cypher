// graphonc schema: constraints and indexes
// What keeps loads idempotent and fast: every node is unique on (cohort, id) within its label, so
// two cohorts share one database without mixing (the constraint's index also finds a cohort's nodes).
// graphonc load-neo4j runs these itself (graphonc.store.neo4j_load.schema_statements); a test
// checks this file says the same. The embedding vector index is created by `graphonc export`.
CREATE CONSTRAINT patient_key IF NOT EXISTS FOR (n:Patient) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT mutation_key IF NOT EXISTS FOR (n:Mutation) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT gene_key IF NOT EXISTS FOR (n:Gene) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT pathway_key IF NOT EXISTS FOR (n:Pathway) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT treatment_key IF NOT EXISTS FOR (n:Treatment) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT genepanel_key IF NOT EXISTS FOR (n:GenePanel) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT radiomicphenotype_key IF NOT EXISTS FOR (n:RadiomicPhenotype) REQUIRE (n.cohort, n.id) IS UNIQUE;
CREATE CONSTRAINT fusion_key IF NOT EXISTS FOR (n:Fusion) REQUIRE (n.cohort, n.id) IS UNIQUE;
// One node per cohort whose write lock a running load holds, so loads of one cohort take turns.
CREATE CONSTRAINT graphonc_load_lock IF NOT EXISTS FOR (n:GraphoncLoadLock) REQUIRE n.cohort IS UNIQUE;
