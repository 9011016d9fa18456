"""Errors of the contract layer: a task.json or model.json that breaks the predict contract."""

from __future__ import annotations

from evaluator.core.errors import BenchError


class ContractError(BenchError):
    """A contract file (task.json, model.json) is unreadable or breaks its schema.

    ``problems`` holds one "key: expected X, found Y" line per problem; the message lists them
    under the file's name.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            message = f"{source}: {problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in problems)
            message = f"{source} breaks the predict contract ({len(problems)} problems):\n{lines}"
        super().__init__(message)
