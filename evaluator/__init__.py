"""SpaRED Bench evaluator: datasets, completion, contract, runners, scoring, store, orchestration.

Layers, lowest first (a module never imports a higher one):
``core`` → ``datasets``, ``completion`` → ``contract`` → ``runners``, ``scoring`` → ``store`` →
``orchestrator`` → ``cli``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
