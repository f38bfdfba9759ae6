"""`--where` conditions: equality on any metadata field, comparisons on price."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QueryError

OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
NUMERIC_FIELDS = ("price",)
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")
# The shape of a condition, as the API schema states it (a value that is not blank).
PATTERN = r"^\s*[A-Za-z_][A-Za-z0-9_.]*\s*(<=|>=|!=|=|<|>)\s*\S"


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str | float

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_where(text: str) -> Condition:
    """`brand=Acme`, `price<=50`, `gender!=Men`: one condition, or an error naming what is wrong."""
    match = _CONDITION.match(text)
    if not match:
        raise QueryError(f"bad filter {text!r}: expected FIELD=VALUE or price<=N / price>=N")
    field, op, value = match.groups()
    if value == "":
        raise QueryError(f"bad filter {text!r}: no value after {op!r}")
    if field in NUMERIC_FIELDS:
        try:
            return Condition(field, op, float(value))
        except ValueError:
            raise QueryError(f"bad filter {text!r}: {field} needs a number, got {value!r}") from None
    if op not in ("=", "!="):
        raise QueryError(f"bad filter {text!r}: {field} only supports = and != (comparisons are for price)")
    return Condition(field, op, value)


def fold(text: str) -> str:
    """A value as filters compare it: case, spaces, hyphens and a plural ending ignored, so
    "T-shirts", "tshirt" and "Tshirts" are one value, as are "Dresses" and "dress"."""
    word = "".join(ch for ch in text.lower() if ch.isalnum())
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word
