"""`firs demo`: make the drawn catalogue, index it, search it, say what to try next."""

from __future__ import annotations

import csv
from pathlib import Path

from ..cli import format_table
from ..pipeline.build import BuildOptions, build_index
from ..pipeline.summary import print_summary
from ..search.engine import Query, SearchEngine
from ..vision.embedder import Embedder
from .garments import BRANDS, KINDS, GarmentSpec, catalogue_specs, draw_garment, street_scene

QUERY_PRODUCT = GarmentSpec("dress", "pink", "striped")
# The web page's default: the garment located in the photo and searched by itself.
MODE = "fine"


def write_catalogue(folder: Path) -> Path:
    """Draw every product into folder/images and list them in folder/catalog.csv."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image", "title", "brand", "category", "color", "pattern", "price", "currency"])
        for number, spec in enumerate(catalogue_specs()):
            image = images / f"{spec.product_id}.png"
            if not image.exists():
                draw_garment(spec).save(image)
            categories, price = KINDS[spec.kind]
            writer.writerow(
                [
                    spec.product_id,
                    f"images/{image.name}",
                    spec.title,
                    BRANDS[number % len(BRANDS)],
                    categories[-1],
                    spec.colour,
                    spec.pattern,
                    f"{price + (number % 3) * 5:.2f}",
                    "USD",
                ]
            )
    return path


def write_query(folder: Path) -> Path:
    """The query product drawn another way, hanging on a street wall."""
    path = folder / "query.jpg"
    street_scene(draw_garment(QUERY_PRODUCT, style=1)).save(path, quality=90)
    return path


def run_demo(
    workdir: Path, catalog: list[Path] | None = None, query: Path | None = None, embedder: Embedder | None = None
) -> None:
    """Build the index of the drawn catalogue (or `catalog`), search it with the drawn query photo
    (or `query`) and print the answer and what to try next. `embedder`: one this process holds."""
    workdir.mkdir(parents=True, exist_ok=True)
    sources = catalog or [write_catalogue(workdir / "catalog")]
    index = workdir / "index"
    print(f"building the index of {', '.join(map(str, sources))} ...")
    report = build_index(sources, index, BuildOptions(cache_dir=workdir / "image-cache"), embedder)
    print_summary(report, index)
    drawn = query is None
    if query is None:
        query = write_query(workdir)
        print(f"\nquery: {query} (a {QUERY_PRODUCT.title.lower()}, drawn differently, hanging on a street wall)")
    else:
        print(f"\nquery: {query}")
    how = f"mode {MODE}: the garment located in the photo and searched by itself"
    answer = SearchEngine(index, embedder).search(Query(image=query, k=5, mode=MODE)).as_dict()
    print(format_table(answer))
    if drawn and catalog is None:
        ids = [result["id"] for result in answer["results"]]
        target = QUERY_PRODUCT.product_id
        place = f"#{ids.index(target) + 1}" if target in ids else "not in the top 5"
        print(f"the product in the photo, {target}, came {place} ({how})")
    else:
        print(f"({how})")
    # `make serve` serves demo/index: offered when that is this index, seen from here
    serve = "make serve" if index.resolve() == Path("demo/index").resolve() else f"firs serve --index {index}"
    print(f"""
what to try next (after `. .venv/bin/activate`, or prefix .venv/bin/):
  {serve}   # the web page (searches in mode fine) and the API: http://127.0.0.1:8000/
  firs search {query} --index {index} --mode {MODE} --json   # the same answer as JSON
  firs search {query} --index {index} --mode simple   # the whole photo, background and all
  firs search YOUR_PHOTO.jpg --index {index} --mode fine   # your own photo (JPEG, PNG, HEIC, ...)
  firs search PERSON.jpg --index {index} --mode tag   # the garment worn, among products of its type
  firs search {query} --index {index} --mode fine --text "in pink"   # the photo, refined by words
  firs search --text "striped skirt" --index {index} --where "price<=40"   # words and filters
  firs search --like {QUERY_PRODUCT.product_id} --index {index}   # more like this product
  firs build YOUR_CATALOG.csv --out my-index         # CSV: id,image,title,brand,category,price
  firs build meta_Clothing.json.gz --out my-index    # Amazon product metadata (2014 or 2018)
  firs demo --catalog YOUR_CATALOG.csv               # this demo on a real catalogue
  firs eval --index my-index --queries queries.tsv   # recall@k, mAP and latency""")
