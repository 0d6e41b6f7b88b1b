"""liftkd: LIFT and PLACE (Han, Yeo, Yoo, CVPR 2026) reproduced, in rooms by stage.

The package, against the paper (docs/method.md states each equation and its function):

- ``liftkd.method``: the linear probe and its decomposition, LIFT, PLACE, the KD baselines and
  the backbones' recipes (the paper's method and baselines);
- ``liftkd.models``: teachers, structured pruning (Diff-Pruning), depth pruning (TinyFusion),
  block removal (BK-SDM) (the students of the experiments);
- ``liftkd.training``: the noise schedule, the training loop, KD side by side, DDIM sampling;
- ``liftkd.measure``: FID and costs on offline features, the floor, the probe over timesteps,
  the statistical rules, benchmarks (the evaluation protocol);
- ``liftkd.stages``: one module per notebook stage: teacher, students, capacity floor, error
  study, the KD job of every backbone, the pixel sweep, the DiT and latent paths, the paper's
  regime (its run's settings);
- ``liftkd.results``: tables, the seven claims, figures, exported students;
- at the top: settings (``config``, ``sections``, ``profiles``), data, run folders (``runs``),
  locks, the settings check, the tutorial's computations.

Imports run one way, down these rooms (``tests/test_layout.py``).
"""
