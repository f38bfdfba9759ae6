#!/usr/bin/env bash
# `firs train` by the protocol of its issue, through the real commands (needs ../shared/data):
# gallery = viton-dev products + distractors; train on the pairs of 80 % of the products
# (the split is firs train's own, by product, seeded); evaluate the held-out products' studio
# queries and synthetic street versions of them, on an index without and with the model.
#   bash bench/devset_train.sh [OUT_DIR] [extra firs train options...]
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(cd ../shared/data && pwd)
out=${1:-bench/out/dev}
shift || true
firs=.venv/bin/firs
mkdir -p "$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
.venv/bin/python - "$data" "$out" <<'PY'
import csv, sys
from pathlib import Path
data, out = Path(sys.argv[1]), Path(sys.argv[2])
pictures = sorted((data / "viton-dev" / "products").glob("*.jpg")) + sorted((data / "distractors").glob("*.jpg"))
with (out / "catalog.csv").open("w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["id", "image", "category"])
    writer.writerows([p.stem, str(p), "tops" if "viton" in str(p) else ""] for p in pictures)
print(f"catalogue: {len(pictures)} products")
PY
SECONDS=0
[ -f "$out/model/model.json" ] || $firs train --queries "$data/viton-dev/queries.tsv" --catalog "$out/catalog.csv" \
    --out "$out/model" --image-root "$data" "$@"
echo "train wall time: ${SECONDS} s"
.venv/bin/python - "$data" "$out" <<'PY'
import csv, json, sys
from pathlib import Path
data, out = Path(sys.argv[1]), Path(sys.argv[2])
held = set(json.loads((out / "model" / "model.json").read_text())["trained_on"]["held_out_products"])
with (data / "viton-dev" / "queries.tsv").open() as handle:
    rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["product_id"] in held]
with (out / "heldout.tsv").open("w") as handle:
    handle.write("query\tproduct_id\n")
    handle.writelines(f"{data / 'viton-dev' / r['query']}\t{r['product_id']}\n" for r in rows)
print(f"held out: {len(held)} products, {len(rows)} studio queries")
PY
[ -f "$out/street/queries.tsv" ] || .venv/bin/python bench/make_synthetic_queries.py --queries "$out/heldout.tsv" \
    --n 100000 --out "$out/street"
for name in base model; do
    model=(); [ "$name" = model ] && model=(--model "$out/model")
    SECONDS=0
    [ -f "$out/index-$name/manifest.json" ] || $firs build "$out/catalog.csv" --out "$out/index-$name" \
        --image-root "$data" --quiet "${model[@]}"
    echo "index-$name build wall time: ${SECONDS} s; bytes on disk: $(du -sb "$out/index-$name/" | cut -f1)"
    for queries in heldout street/queries; do
        echo "== index-$name, $queries"
        $firs eval --index "$out/index-$name" --queries "$out/$queries.tsv" --mode simple --mode fine --mode tag --quiet
    done
done
