"""Training pairs: a query photo and the catalogue product it shows.

PAIRS.tsv has `firs eval`'s format: a header `query<TAB>product_id`, then one pair a line,
query paths relative to the file. Bad lines (wrong field count, a missing photo, a product
the catalogue lacks, a pair given twice) are reported with file:line and skipped; `--strict`
stops at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..catalog.problems import ProblemLog
from ..errors import FirsError

HEADER = ["query", "product_id"]


PHOTO, WORN, SYNTHETIC = "photo", "worn", "synthetic"


@dataclass(frozen=True)
class Pair:
    """A query picture and its product. kind: PHOTO, a given query photo; WORN, another picture
    of the product that counts only if the localiser finds a person wearing it; SYNTHETIC, the
    product's own shot, seen only through made-up worn and street versions (train/augment.py)."""

    query: Path
    product_id: str
    origin: str  # file:line, or the product's origin and picture number
    kind: str = PHOTO


def read_pairs(path: Path, products: set[str], problems: ProblemLog) -> list[Pair]:
    """The usable pairs of a PAIRS.tsv; a missing file or header is fatal, bad lines are reported."""
    path = Path(path)
    if not path.is_file():
        raise FirsError(f"{path}: pairs file not found")
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
        if [field.strip() for field in header] != HEADER:
            raise FirsError(f"{path}:1: header must be 'query<TAB>product_id', found {header!r}")
        pairs: list[Pair] = []
        first_line: dict[tuple[Path, str], int] = {}  # a pair given twice would weigh twice
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            if len(fields) != 2 or not all(fields):
                problems.report(str(path), number, f"expected 'query<TAB>product_id', found {line[:200]!r}")
                continue
            query, product_id = path.parent / fields[0], fields[1]
            if product_id not in products:
                problems.report(str(path), number, f"product {product_id!r} is not in the catalogue")
            elif not query.is_file():
                missing = "is not a file" if query.exists() else "not found"
                problems.report(str(path), number, f"query photo {query} {missing}")
            elif (key := (query.resolve(), product_id)) in first_line:
                same = f"the same pair as line {first_line[key]} ({fields[0]}, {product_id})"
                problems.report(str(path), number, same)
            else:
                first_line[key] = number
                pairs.append(Pair(query, product_id, f"{path}:{number}"))
    if not pairs:
        raise FirsError(f"{path}: no usable pairs ({len(problems.problems)} bad lines)")
    return pairs
