"""Results: tables and curves (``report``), the claims' verdicts (``claims``), every figure
(``plots``), and students taken out as diffusers folders (``export``, ``student_folder``,
``student_layouts``, ``model_card``; ``python -m liftkd.results.export``).
"""
