"""The KD sweep of the pixel U-Net: one job trains the students of a (ratio, seed) side by side,
then measures them, as every KD job does (``liftkd.stages.kd_job``, shared with the DiT and latent paths).

- ``liftkd.stages.sweep.jobs``: the jobs of a profile and their names (``main_r0.8_s0``);
- ``liftkd.stages.sweep.pixel``: the pixel U-Net as a ``kd_job.Backbone``, a sweep job as a
  ``kd_job.KDJob``, and the teacher's reference scores under the sweep's protocol;
- ``python -m liftkd.stages.sweep list|check|train`` (``__main__.py``): the job names for make, a name
  checked, and training under ``accelerate launch``.

A job's ``results.json`` (written by notebook 04) is written last: its presence means the job is
done, which is what make checks. Nothing is imported here, so that ``list`` stays quick.
"""
