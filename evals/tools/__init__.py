"""Bench and calibration tooling, run from a clone (``make bench``, ``python -m evals.tools.calibrate_support``).

Not installed: pyproject.toml leaves ``evals.tools`` out of the package. The data sets these tools read live in
``../shared``, found through ``evals.tools.shared.shared_dir()``.
"""
