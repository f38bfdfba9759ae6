"""Collecting malformed-line reports, or failing on the first one (--strict).

Notes are lesser findings on lines whose product was still read (an extra picture dropped): they
never skip a line, never count as skipped, and never stop a --strict run.
"""

from __future__ import annotations

from ..errors import CatalogError
from .product import ReadProblem


def shown(value: object, limit: int = 200) -> str:
    """A catalogue value as it may appear in a one-line message: short, printable."""
    if isinstance(value, int) and value.bit_length() > 128:  # str() refuses ints of over 4300 digits
        return f"(an integer of {value.bit_length()} bits)"
    text = str(value) if not isinstance(value, str) or value.isprintable() else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class ProblemLog:
    """Records malformed lines (skipped); in strict mode the first one is fatal. Also keeps notes."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.problems: list[ReadProblem] = []
        self.notes: list[ReadProblem] = []

    def report(self, path: str, line: int, reason: str) -> None:
        problem = ReadProblem(str(path), line, reason)
        if self.strict:
            raise CatalogError(f"{problem} (--strict: stopping at the first malformed line)")
        self.problems.append(problem)

    def note(self, path: str, line: int, reason: str) -> None:
        """Something dropped from a line whose product was kept; never fatal, not a skipped line."""
        self.notes.append(ReadProblem(str(path), line, reason))
