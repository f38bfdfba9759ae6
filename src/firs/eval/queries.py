"""Reading a queries file: header `query<TAB>product_id`, paths relative to the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import FirsError


@dataclass(frozen=True)
class Query:
    path: Path
    product_id: str
    line: int


def read_queries(path: Path) -> list[Query]:
    path = Path(path)
    if not path.is_file():
        raise FirsError(f"{path}: queries file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].strip().split("\t") != ["query", "product_id"]:
        found = lines[0].strip() if lines else "an empty file"
        raise FirsError(f"{path}:1: header must be 'query<TAB>product_id', found {found!r}")
    queries: list[Query] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise FirsError(f"{path}:{number}: expected 'query<TAB>product_id', found {line!r}")
        queries.append(Query(path.parent / fields[0].strip(), fields[1].strip(), number))
    if not queries:
        raise FirsError(f"{path}: no queries after the header")
    return queries
