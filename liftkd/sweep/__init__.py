"""The KD sweep: one job trains the students of a (ratio, seed) side by side, then measures them.

- ``liftkd.sweep.jobs``: the jobs of a profile and their names (``main_r0.8_s0``);
- ``liftkd.sweep.training``: a job's students and objectives, trained side by side, resumable;
- ``liftkd.sweep.evaluation.evaluate_job``: every student scored at every evaluation step, cached in
  ``evals.csv`` one row at a time; ``liftkd.report``: the job's summary rows;
- ``python -m liftkd.sweep list|train`` (``__main__.py``): the job names for make, and training
  under ``accelerate launch``.

A job's ``results.json`` (written by notebook 04) is written last: its presence means the job is
done, which is what make checks. Nothing is imported here, so that ``list`` stays quick.
"""
