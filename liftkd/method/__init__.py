"""The method (paper sections 3-4): the linear probe and its coarse/fine split (``probe``),
LIFT and PLACE (``lift``), the KD baselines (``losses``), the other backbones' recipes
(``recipes``), feature taps and FitNet adapters (``features``), objectives by name
(``objectives``), and what each term asks of the student (``diagnostics``).

Everything here depends on torch only: ``from liftkd.method.objectives import build_objective``
brings any objective into your own training loop.
"""
