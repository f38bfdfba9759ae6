"""Where the embed stage runs: one interface, two engines.

`local` runs the partitions one after another in this process (its models built once);
`spark` hands them to a PySpark cluster — `local[*]` on this machine by default — whose
executors fetch and embed them and write the shards where the index stage reads them (on a
real cluster that folder must be on a file system every executor and the driver share).
Both produce the same shards from the same partitions.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from ..errors import FirsError
from ..vision.embedder import Embedder
from ..vision.localiser import GarmentLocaliser
from .partition import EmbedJob, PartitionReport, PartitionTask, embed_partition, fetch_partition, models_for

ENGINES = ("local", "spark")
_LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")


class Engine(Protocol):
    name: str
    min_partitions: int  # the fewest partitions that keep the engine busy

    def run(
        self, job: EmbedJob, tasks: Sequence[PartitionTask], shard_dir: str, picture_dir: str, progress: bool
    ) -> list[PartitionReport]: ...


class LocalEngine:
    name = "local"
    min_partitions = 1

    def __init__(self, embedder: Embedder | None = None, localiser: GarmentLocaliser | None = None) -> None:
        self.embedder, self.localiser = embedder, localiser

    def run(
        self, job: EmbedJob, tasks: Sequence[PartitionTask], shard_dir: str, picture_dir: str, progress: bool
    ) -> list[PartitionReport]:
        """The partitions in order; the next one's images download while this one is embedded."""
        models = models_for(job, self.embedder, self.localiser)
        total = sum(len(task.products) for task in tasks)
        reports: list[PartitionReport] = []
        fetching = ThreadPoolExecutor(max_workers=1)
        try:
            with tqdm(total=total, desc="embed images", unit="img", disable=not progress) as bar:
                ahead = [fetching.submit(fetch_partition, job, task) for task in tasks[:1]]
                for number, task in enumerate(tasks):
                    fetched = ahead.pop().result()
                    ahead.extend(fetching.submit(fetch_partition, job, t) for t in tasks[number + 1 : number + 2])
                    reports.append(embed_partition(job, task, shard_dir, picture_dir, models, bar, fetched))
        finally:  # Ctrl-C: the partition downloading ahead is dropped, not waited for
            fetching.shutdown(wait=False, cancel_futures=True)
        return reports


def _run_on_executor(job: EmbedJob, shard_dir: str, picture_dir: str, task: PartitionTask) -> PartitionReport:
    return embed_partition(job, task, shard_dir, picture_dir)


def local_slots(master: str) -> int | None:
    """How many tasks a `local[N]` master runs at once (None for a cluster)."""
    found = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if not found:
        return None
    count = found.group(1)
    if count is None:
        return 1
    return (os.cpu_count() or 1) if count == "*" else int(count)


class SparkEngine:
    name = "spark"

    def __init__(self, master: str = "local[*]") -> None:
        self.master = master

    def run(
        self, job: EmbedJob, tasks: Sequence[PartitionTask], shard_dir: str, picture_dir: str, progress: bool
    ) -> list[PartitionReport]:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise FirsError("--engine spark needs pyspark (pip install pyspark) and Java 17") from None
        slots = local_slots(self.master)
        if slots and job.threads is None:  # the cores shared among the tasks running at once
            job = replace(job, threads=max(1, (os.cpu_count() or 1) // slots))
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        try:
            spark = (
                SparkSession.builder.master(self.master)
                .appName("firs build")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", str(progress).lower())
                .config("spark.task.maxFailures", "2")
                .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_LOG_CONFIG}")
                .getOrCreate()
            )
        except Exception as exc:
            raise FirsError(f"cannot start Spark at {self.master} (Java 17 installed? {_first_line(exc)})") from None
        spark.sparkContext.setLogLevel("ERROR")
        try:
            work = functools.partial(_run_on_executor, job, shard_dir, picture_dir)
            return spark.sparkContext.parallelize(list(tasks), max(1, len(tasks))).map(work).collect()
        except Exception as exc:
            raise FirsError(f"the Spark job failed ({self.master}): {_first_line(exc)}") from None
        finally:
            spark.stop()

    @property
    def min_partitions(self) -> int:
        """On this machine, enough partitions to keep every task slot busy; a cluster's are the user's."""
        return 2 * (local_slots(self.master) or 0)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def make_engine(name: str, master: str | None = None, **local: object) -> Engine:
    if name == "local":
        return LocalEngine(**local)  # type: ignore[arg-type]
    if name == "spark":
        return SparkEngine(master or "local[*]")
    raise FirsError(f"unknown engine {name!r} ({', '.join(ENGINES)})")
