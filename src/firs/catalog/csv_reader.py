"""CSV catalogues: a header row; columns `id` and `image` (or `images`) required, the rest metadata.

`--columns image=images/{id}.jpg` makes the image path from other columns when the file
has no image column (a template: any text with {column} fields).

A product's further pictures go in an `images` column (or `--columns images=COLUMN`), separated by
`|`: "a.jpg|b.jpg|https://x/c.jpg". Each is checked like `image`; Product.images is the image, then
those, repeats removed. With no `image` column (or an empty cell) the first of `images` is the image.
A refused extra picture is dropped and noted (ProblemLog.note); the product is kept.

UTF-8 with or without a BOM. Problems are reported at the line where a record starts. Quoting is
strict: a quote left open swallows the lines after it into one field, so a record whose key fields
(id, image, images, price) hold a line break, or that ends unreadable, is reported and its later lines are
read again as rows of their own. Local image paths must stay inside the file's folder (see paths.py).
"""

from __future__ import annotations

import csv
import string
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import CatalogError
from .amazon import LineReader, LineTooLong, open_text
from .fields import clean_text, image_and_price, with_currency
from .paths import ImageRoots
from .problems import ProblemLog
from .product import Product

REQUIRED = ("id", "image")  # `image` may be replaced by an `images` column
PICTURE_SEPARATOR = "|"
_CATEGORY_COLUMNS = ("category", "categories", "masterCategory", "subCategory", "articleType")
_KEY_FIELDS = ("id", "image", "images", "price")  # never legitimately span lines


def parse_column_map(spec: str | None) -> dict[str, str]:
    """'image=filename,title=name' -> {'image': 'filename', 'title': 'name'}."""
    mapping: dict[str, str] = {}
    if not spec:
        return mapping
    for part in spec.split(","):
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise CatalogError(f"--columns: {part!r} is not FIELD=COLUMN (e.g. image=filename)")
        mapping[field.strip()] = column.strip()
    return mapping


class _RecordLines:
    """csv.reader's input: numbered lines, remembering those of the record being parsed.

    replay() hands the lines after a bad record's first line to the parser again, so rows that an
    unterminated quote swallowed are still read; each line is replayed at most once, which keeps
    a file full of stray quotes from being parsed over and over.
    """

    def __init__(self, handle: TextIO) -> None:
        self._source = LineReader(handle)
        self._pending: deque[tuple[int, str]] = deque()
        self._record: list[tuple[int, str]] = []
        self._replayed_to = 0

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        if self._pending:
            number, line = self._pending.popleft()
        else:
            line = next(self._source)
            number = self._source.number
        self._record.append((number, line))
        return line

    def new_record(self) -> None:
        self._record.clear()

    @property
    def start(self) -> int:
        """The line the current record starts on (the next line when none is read yet)."""
        return self._record[0][0] if self._record else self._source.number + 1

    @property
    def end(self) -> int:
        return self._record[-1][0] if self._record else self.start

    def replay(self) -> None:
        again = [(number, line) for number, line in self._record[1:] if number > self._replayed_to]
        if again:
            self._replayed_to = again[-1][0]
            self._pending.extendleft(reversed(again))


@dataclass(frozen=True)
class _Columns:
    """Which header column each product field comes from."""

    header: list[str]
    field_to_column: dict[str, str]
    template: str | None  # builds the image path when set
    key_columns: tuple[str, ...]  # columns whose values must stay on one line
    used: frozenset[str]  # columns that are product fields, not metadata

    def get(self, values: Mapping[str, str], field: str) -> str:
        column = self.field_to_column.get(field)
        return values.get(column, "") if column else ""


def _template_fields(path: Path, template: str, header: list[str]) -> list[str]:
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    unknown = [name for name in fields if name not in header]
    if unknown:
        raise CatalogError(
            f"{path}: --columns image={template}: no column {', '.join(unknown)} in the header ({', '.join(header)})"
        )
    if not fields:
        raise CatalogError(f"{path}: --columns image={template}: no {{column}}")
    return fields


def _columns(path: Path, header: list[str], columns: Mapping[str, str] | None) -> _Columns:
    columns = dict(columns or {})
    field_to_column = {name: name for name in header}
    template = columns.pop("image") if "{" in columns.get("image", "") else None
    image_columns: list[str] = []
    if template is not None:
        image_columns = _template_fields(path, template, header)
        field_to_column["image"] = ""
    for field, column in columns.items():
        if column not in header:
            raise CatalogError(
                f"{path}: --columns maps {field} to column {column!r}, but the header has only {', '.join(header)}"
            )
        field_to_column[field] = column
    missing = [name for name in REQUIRED if name not in field_to_column]
    if "images" in field_to_column and missing == ["image"]:
        field_to_column["image"] = ""  # the first of `images`
        missing = []
    if missing:
        raise CatalogError(
            f"{path}:1: header lacks required column(s) {', '.join(missing)} "
            f"(found {', '.join(header)}; map other names with --columns image=COLUMN or images=COLUMN)"
        )
    keys = [field_to_column[name] for name in _KEY_FIELDS if field_to_column.get(name)]
    fields = (*REQUIRED, "images", "title", "brand", "price")
    used = frozenset(field_to_column[name] for name in fields if name in field_to_column)
    return _Columns(header, field_to_column, template, tuple(dict.fromkeys([*keys, *image_columns])), used)


def _read_header(path: Path, reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next(reader, [])
    except (csv.Error, LineTooLong) as exc:
        raise CatalogError(f"{path}:1: unreadable header row ({exc})") from exc
    if not header:
        raise CatalogError(f"{path}: empty file, expected a header row with columns id,image")
    return header


def _csv_error(exc: csv.Error, start: int, end: int) -> str:
    if str(exc) == "unexpected end of data":
        return f"unterminated quote: the record runs from line {start} to the end of the file (line {end})"
    if end > start:
        return f"unreadable CSV record spanning lines {start}–{end}: {exc} (unterminated quote?)"
    return f"unreadable CSV row: {exc}"


def _rows(path: Path, lines: _RecordLines, reader: Iterator[list[str]], problems: ProblemLog) -> Iterator[list[str]]:
    """Non-empty rows; lines.start/end tell where each lies. Unreadable records are reported."""
    while True:
        lines.new_record()
        try:
            row = next(reader)
        except StopIteration:
            return
        except LineTooLong as exc:
            problems.report(str(path), min(lines.start, exc.number), f"{exc}; record skipped")
            lines.replay()
            continue
        except csv.Error as exc:
            problems.report(str(path), lines.start, _csv_error(exc, lines.start, lines.end))
            lines.replay()
            continue
        if row:
            yield row


def _shape_problem(row: list[str], layout: _Columns, start: int, end: int) -> str | None:
    """Why the row's fields do not fit the header, or None."""
    spanning = f"fields spanning lines {start}–{end}: unterminated quote?"
    if len(row) != len(layout.header):
        count = f"{len(row)} fields" if len(row) > len(layout.header) else "too few fields"
        reason = f"{count}, header has {len(layout.header)}"
        return f"{spanning} ({reason})" if end > start else reason
    values = dict(zip(layout.header, row, strict=True))
    broken = [column for column in layout.key_columns if "\n" in values[column] or "\r" in values[column]]
    if broken:
        return f"{spanning} (column {broken[0]!r} holds a line break)"
    return None


def _image(values: Mapping[str, str], layout: _Columns, product_id: str) -> str:
    if layout.template is None:
        return layout.get(values, "image").strip()
    try:
        return layout.template.format(**values).strip()
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise ValueError(f"product {product_id}: --columns image={layout.template}: {exc}") from None


def _pictures(values: Mapping[str, str], layout: _Columns) -> list[str]:
    """The `images` cell split on PICTURE_SEPARATOR, blanks left out."""
    cell = layout.get(values, "images")
    return [part.strip() for part in cell.split(PICTURE_SEPARATOR) if part.strip()] if cell else []


def _product(
    values: Mapping[str, str], layout: _Columns, images: ImageRoots, origin: str, dropped: list[str]
) -> Product:
    """The row's product; ValueError names the bad field. Refused extra pictures are added to `dropped`."""
    product_id = clean_text(layout.get(values, "id"))
    if not product_id:
        raise ValueError(f"empty field 'id' (column {layout.field_to_column['id']!r})")
    pictures = _pictures(values, layout)
    image = _image(values, layout, product_id) or (pictures.pop(0) if pictures else "")
    if not image:
        field = "fields 'image' and 'images'" if layout.field_to_column.get("images") else "field 'image'"
        raise ValueError(f"product {product_id}: empty {field}")
    image, price = image_and_price(product_id, image, layout.get(values, "price"), images)
    kept, refused = images.pictures(image, pictures)
    dropped.extend(f"product {product_id}: extra image dropped ({reason})" for reason in refused)
    metadata = {
        column: clean_text(value) for column, value in values.items() if column not in layout.used and clean_text(value)
    }
    return Product(
        id=product_id,
        image=image,
        images=kept,
        title=clean_text(layout.get(values, "title")),
        brand=clean_text(layout.get(values, "brand")),
        categories=[metadata[name] for name in _CATEGORY_COLUMNS if metadata.get(name)],
        price=price,
        metadata=with_currency(metadata, layout.get(values, "price")) if price is not None else metadata,
        origin=origin,
    )


def read_csv(
    path: Path, problems: ProblemLog, columns: Mapping[str, str] | None = None, image_roots: Sequence[Path] = ()
) -> Iterator[Product]:
    """Products of a CSV file; bad rows go to `problems`, a bad header is fatal.

    Local images must lie in the file's folder or in one of `image_roots`.
    """
    images = ImageRoots.of(path.parent, image_roots)
    with open_text(path, newline="") as handle:
        lines = _RecordLines(handle)
        reader = csv.reader(lines, strict=True)
        layout = _columns(path, _read_header(path, reader), columns)
        for row in _rows(path, lines, reader, problems):
            start, end = lines.start, lines.end
            problem = _shape_problem(row, layout, start, end)
            if problem is not None:
                problems.report(str(path), start, problem)
                if end > start:
                    lines.replay()
                continue
            dropped: list[str] = []
            try:
                product = _product(
                    dict(zip(layout.header, row, strict=True)), layout, images, f"{path}:{start}", dropped
                )
            except ValueError as exc:
                problems.report(str(path), start, str(exc))
                continue
            for reason in dropped:
                problems.note(str(path), start, reason)
            yield product
