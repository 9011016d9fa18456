"""The orchestrator layer of the evaluator (see DESIGN.md, "Layout")."""

__all__: list[str] = []
