#!/usr/bin/env bash
# `firs train` by the protocol of its issue, through the real commands (needs ../shared/data):
# gallery = viton-dev products + distractors; train on the pairs of 80 % of the products
# (the split is firs train's own, by product, seeded); evaluate the held-out products' studio
# queries and synthetic street versions of them, on an index without and with the model.
#   [PAIRS=given|mined|synthetic] bash bench/devset_train.sh [OUT_DIR] [extra firs train options...]
# PAIRS=given (default) trains on queries.tsv; mined: no --queries, the catalogue's training
# products carry their model photo as a second picture (held-out products only their shot);
# synthetic: no --queries and no second pictures (firs train falls back to synthetic pairs).
# INDEXES="model" skips building and evaluating the untrained index (default "base model").
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(cd ../shared/data && pwd)
out=${1:-bench/out/dev}
shift || true
pairs=${PAIRS:-given}
firs=.venv/bin/firs
mkdir -p "$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
.venv/bin/python - "$data" "$out" "$pairs" <<'PY'
import csv, sys
from pathlib import Path
from firs.train.trainer import TrainOptions, split_by_product
data, out, pairs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with (data / "viton-dev" / "queries.tsv").open() as handle:
    rows = list(csv.DictReader(handle, delimiter="\t"))
options = TrainOptions()  # firs train's own split of these products, as the given pairs get it
held = split_by_product([r["product_id"] for r in rows], options.val_fraction, options.seed)
worn = {r["product_id"]: str(data / "viton-dev" / r["query"]) for r in rows if r["product_id"] not in held}
pictures = sorted((data / "viton-dev" / "products").glob("*.jpg")) + sorted((data / "distractors").glob("*.jpg"))
with (out / "catalog.csv").open("w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["id", "image", "category", "images"])
    for p in pictures:
        more = [worn[p.stem]] if pairs == "mined" and p.stem in worn else []
        writer.writerow([p.stem, str(p), "tops" if "viton" in str(p) else "", "|".join([str(p), *more])])
with (out / "heldout.tsv").open("w") as handle:
    handle.write("query\tproduct_id\n")
    handle.writelines(f"{data / 'viton-dev' / r['query']}\t{r['product_id']}\n" for r in rows if r["product_id"] in held)
print(f"catalogue: {len(pictures)} products; held out: {len(held)} products")
PY
given=(--queries "$data/viton-dev/queries.tsv")
[ "$pairs" = given ] || given=()
SECONDS=0
[ -f "$out/model/model.json" ] || $firs train "${given[@]}" --catalog "$out/catalog.csv" \
    --out "$out/model" --image-root "$data" "$@"
echo "train wall time: ${SECONDS} s"
[ -f "$out/street/queries.tsv" ] || .venv/bin/python bench/make_synthetic_queries.py --queries "$out/heldout.tsv" \
    --n 100000 --out "$out/street"
for name in ${INDEXES:-base model}; do
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
