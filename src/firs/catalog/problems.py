"""Collecting malformed-line reports, or failing on the first one (--strict)."""

from __future__ import annotations

from ..errors import CatalogError
from .product import ReadProblem


class ProblemLog:
    """Records malformed lines; in strict mode the first one is fatal."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.problems: list[ReadProblem] = []

    def report(self, path: str, line: int, reason: str) -> None:
        problem = ReadProblem(str(path), line, reason)
        if self.strict:
            raise CatalogError(f"{problem} (--strict: stopping at the first malformed line)")
        self.problems.append(problem)
