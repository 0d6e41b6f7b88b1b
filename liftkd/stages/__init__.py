"""The stages of a run, one per notebook: the teacher (01, ``teacher``), the students and the
capacity floor (02, ``students``, ``capacity``), the error study (03, ``error_study``), the KD
job every backbone runs (``kd_job``, ``kd_runs``), the pixel sweep (04, ``sweep``), the DiT
(06, ``dit``) and latent (07, ``latent``) paths.
"""
