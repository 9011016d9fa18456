"""Benchmarks: ``python -m tests.benchmarks [NAME ...]`` prints one table of figures and ratios."""
