"""How the stages measure: wall and CPU clocks, repeated timings and their medians, peak RSS, and
cProfile when a profile is asked for."""

from __future__ import annotations

import cProfile
import io
import pstats
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psutil

from bench.records import Rate

T = TypeVar("T")
Timing = tuple[float, float]  # one run's (wall, CPU) seconds


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (getrusage: KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    return round(float(psutil.Process().memory_info().rss) / 2**20, 1)


@contextmanager
def profiled(folder: Path | None, name: str) -> Iterator[None]:
    """cProfile the block when the config names a profile folder; writes NAME.prof and NAME.txt."""
    if folder is None:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        folder.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(folder / f"{name}.prof"))
        text = io.StringIO()
        for key in ("cumulative", "tottime"):
            text.write(f"==== {name}: top 45 by {key} ====\n")
            pstats.Stats(prof, stream=text).strip_dirs().sort_stats(key).print_stats(45)
        (folder / f"{name}.txt").write_text(text.getvalue())


class Clock:
    """Wall and process-CPU time of a block (CPU covers every thread of this process)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @contextmanager
    def run(self) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c


def timed(reps: int, work: Callable[[], T]) -> tuple[list[Timing], T]:
    """Run `work` `reps` times, each run timed alone: the timings, and what the last run made."""
    assert reps >= 1
    timings: list[Timing] = []
    for _ in range(reps):
        clock = Clock()
        with clock.run():
            made = work()
        timings.append((clock.wall, clock.cpu))
    return timings, made


def median_rate(timings: list[Timing], count: int) -> Rate:
    walls = [w for w, _c in timings]
    wall, cpu = statistics.median(walls), statistics.median(c for _w, c in timings)
    return Rate(
        per_s=round(count / wall, 1),
        wall_ms_each=round(1000 * wall / count, 3),
        cpu_ms_each=round(1000 * cpu / count, 3),
        runs_per_s=[round(count / w, 1) for w in walls],
    )
