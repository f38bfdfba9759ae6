"""CSV catalogues: a header row; columns `id` and `image` required, the rest metadata.

`--columns image=images/{id}.jpg` makes the image path from other columns when the file
has no image column (a template: any text with {column} fields)."""

from __future__ import annotations

import csv
import string
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..errors import CatalogError
from .amazon import open_text
from .fields import clean_text, parse_price
from .problems import ProblemLog
from .product import Product

REQUIRED = ("id", "image")
_CATEGORY_COLUMNS = ("category", "categories", "masterCategory", "subCategory", "articleType")


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


def resolve_image(value: str, base: Path) -> str:
    """URLs stay as they are; relative paths are taken from the catalogue file's folder."""
    if value.startswith(("http://", "https://")):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def read_csv(path: Path, problems: ProblemLog, columns: Mapping[str, str] | None = None) -> Iterator[Product]:
    """Products of a CSV file; bad rows go to `problems`, a bad header is fatal."""
    columns = dict(columns or {})
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if not header:
            raise CatalogError(f"{path}: empty file, expected a header row with columns id,image")
        field_to_column = {name: name for name in header}
        template = columns.pop("image") if "{" in columns.get("image", "") else None
        if template is not None:
            fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
            unknown = [name for name in fields if name not in header]
            if unknown or not fields:
                raise CatalogError(
                    f"{path}: --columns image={template}: "
                    + (
                        f"no column {', '.join(unknown)} in the header ({', '.join(header)})"
                        if unknown
                        else "no {column}"
                    )
                )
            field_to_column["image"] = ""
        for field, column in columns.items():
            if column not in header:
                raise CatalogError(
                    f"{path}: --columns maps {field} to column {column!r}, but the header has only {', '.join(header)}"
                )
            field_to_column[field] = column
        missing = [name for name in REQUIRED if name not in field_to_column]
        if missing:
            raise CatalogError(
                f"{path}:1: header lacks required column(s) {', '.join(missing)} "
                f"(found {', '.join(header)}; map other names with --columns image=COLUMN)"
            )
        used = {field_to_column[name] for name in (*REQUIRED, "title", "brand", "price") if name in field_to_column}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                problems.report(str(path), reader.line_num, f"unreadable CSV row: {exc}")
                continue
            line = reader.line_num
            if None in row:
                problems.report(str(path), line, f"{len(header) + len(row[None])} fields, header has {len(header)}")
                continue
            if any(value is None for value in row.values()):
                problems.report(str(path), line, f"too few fields, header has {len(header)}")
                continue
            product_id = clean_text(row[field_to_column["id"]])
            image = template.format(**row).strip() if template else row[field_to_column["image"]].strip()
            if not product_id:
                problems.report(str(path), line, f"empty field 'id' (column {field_to_column['id']!r})")
                continue
            if not image:
                problems.report(str(path), line, f"product {product_id}: empty field 'image'")
                continue
            price = None
            if "price" in field_to_column:
                try:
                    price = parse_price(row[field_to_column["price"]])
                except ValueError as exc:
                    problems.report(str(path), line, f"product {product_id}: field 'price': {exc}")
                    continue
            metadata = {
                column: clean_text(value) for column, value in row.items() if column not in used and clean_text(value)
            }
            categories = [metadata[name] for name in _CATEGORY_COLUMNS if metadata.get(name)]
            yield Product(
                id=product_id,
                image=resolve_image(image, path.parent),
                title=clean_text(row.get(field_to_column.get("title", ""), "")),
                brand=clean_text(row.get(field_to_column.get("brand", ""), "")),
                categories=categories,
                price=price,
                metadata=metadata,
                origin=f"{path}:{line}",
            )
