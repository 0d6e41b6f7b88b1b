"""Measuring (the paper's protocol, section 5): FID/KID/precision/recall and costs (``metrics``),
the offline feature extractors (``feature_extractor``), scoring beside the floor
(``evaluation``), the probe over timesteps (``analysis``), the bootstrap of the final FIDs and
their paired differences (``bootstrap``), the statistical rules every verdict uses (``rules``)
and the benchmarks (``bench``, ``python -m liftkd.measure.bench``).
"""
