"""Benchmarks (``musiclust bench ...``): timing and memory of the pipeline's own code.

Kept apart from the subpackages the pipeline stages import, so that editing a benchmark
never invalidates a ``dvc repro`` stage (its deps are the code it imports).
"""
