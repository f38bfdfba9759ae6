"""`firs eval`: run every query through each mode, report recall, mAP and stage latencies."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import FirsError
from ..search.engine import Query, SearchEngine
from .metrics import RECALL_AT, mean_average_precision, percentiles, recall_at
from .queries import read_queries

DEPTH = 100  # ranks beyond this count as not found (AP 0)


def evaluate(
    engine: SearchEngine, queries_file: Path, modes: list[str], progress: bool = True
) -> dict[str, dict[str, Any]]:
    queries = read_queries(queries_file)
    unknown = [q for q in queries if engine.store.label_of(q.product_id) is None]
    if unknown:
        first = unknown[0]
        raise FirsError(
            f"{queries_file}:{first.line}: product {first.product_id!r} is not indexed in "
            f"{engine.index_dir} ({len(unknown)} of {len(queries)} queries name unindexed products)"
        )
    report: dict[str, dict[str, Any]] = {}
    for mode in modes:
        ranks: list[int | None] = []
        stages: dict[str, list[float]] = defaultdict(list)
        for query in tqdm(queries, desc=f"eval {mode}", unit="query", disable=not progress):
            answer = engine.search(Query(image=query.path, k=DEPTH, mode=mode))
            ids = [result["id"] for result in answer.results]
            ranks.append(ids.index(query.product_id) + 1 if query.product_id in ids else None)
            for stage, ms in answer.timings_ms.items():
                stages[stage].append(ms)
        entry: dict[str, Any] = {"n_queries": len(queries)}
        entry.update({f"recall@{k}": round(recall_at(ranks, k), 4) for k in RECALL_AT})
        entry["mAP"] = round(mean_average_precision(ranks), 4)
        timings = {stage: percentiles(v) for stage, v in stages.items() if stage != "total"}
        timings["total"] = percentiles(stages["total"])
        entry["timings_ms"] = timings
        report[mode] = entry
    return report
