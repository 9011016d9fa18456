"""The store layer of the evaluator (see DESIGN.md, "Layout")."""

__all__: list[str] = []
