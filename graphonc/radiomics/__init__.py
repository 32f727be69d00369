"""Radiomic phenotypes: image + mask → pyradiomics features → harmonised features → phenotypes → graph.

Modules (one job each):

* :mod:`~graphonc.radiomics_config` (beside graphonc.config, outside this package) pydantic models
  of ``configs/radiomics.yaml`` and of a cohort config's ``radiomics:`` section;
* :mod:`~graphonc.radiomics.manifest`   the case manifest (patient_id, image, mask, label, …);
* :mod:`~graphonc.radiomics.images`     reading images/masks (NRRD, NIfTI, DICOM series), mask and
  geometry checks;
* :mod:`~graphonc.radiomics.cache`      content-addressed per-case result cache;
* :mod:`~graphonc.radiomics.extract`    parallel, cached, resumable pyradiomics extraction (one case:
  :mod:`~graphonc.radiomics.worker`, the code worker processes run);
* :mod:`~graphonc.radiomics.features`   feature tables (extracted or precomputed CSV) → patient × feature;
* :mod:`~graphonc.radiomics.harmonize`  feature filtering, log transform, per-site z-score / ComBat;
* :mod:`~graphonc.radiomics.phenotypes` clustering into phenotypes, descriptions, saved model;
* :mod:`~graphonc.radiomics.graph`      RadiomicPhenotype nodes, HAS_PHENOTYPE edges, Patient columns;
* :mod:`~graphonc.cli_radiomics`        the ``graphonc radiomics`` commands.

Importing this package is cheap: pyradiomics, SimpleITK and scikit-learn load on first use.
"""
