"""`make fuzz`: run each harness for a bounded time, one after the other, one worker each.

    python -m tests.fuzz [--seconds 60] [--out test-output/fuzz] [--only query,text]

Each target grows its own corpus in OUT/<target>/corpus (seeded from tests/fuzz/corpus/ and the
test fixtures, which are only read) and writes crashes, timeouts and out-of-memory inputs to
OUT/<target>/ (crash-*, timeout-*, oom-*). Reproduce one with
`python -m tests.fuzz.fuzz_parse rss OUT/rss/crash-…`, then add it to tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
SEEDS = HERE / "corpus"
FIXTURES = HERE.parent / "fixtures"


@dataclass(frozen=True)
class Target:
    """One harness run: its command after `python -m`, the seed folders, and its size and time bounds."""

    name: str
    command: tuple[str, ...]
    seeds: tuple[Path, ...]
    max_len: int
    timeout: int  # seconds for one input; a linear-time function never comes near it


def _xml(kind: str) -> Target:
    seeds = (SEEDS / "xml", FIXTURES / "feedparser")
    return Target(kind, ("tests.fuzz.fuzz_parse", kind), seeds, max_len=65_536, timeout=5)


TARGETS = (
    _xml("arxiv-rss"),
    _xml("arxiv-atom"),
    Target("hf-json", ("tests.fuzz.fuzz_parse", "hf-json"), (SEEDS / "hf-json",), max_len=65_536, timeout=5),
    _xml("rss"),
    Target("query", ("tests.fuzz.fuzz_query",), (SEEDS / "query",), max_len=400, timeout=2),
    Target("text", ("tests.fuzz.fuzz_text",), (SEEDS / "text",), max_len=4_096, timeout=5),
)


def command(target: Target, seconds: int, out: Path) -> list[str]:
    """The libFuzzer command line of one target: the first corpus folder is the one it writes to.
    (No -fork/-ignore_crashes: libFuzzer's fork mode does not run atheris targets.)"""
    flags = [
        f"-max_total_time={seconds}",
        f"-max_len={target.max_len}",
        f"-timeout={target.timeout}",
        "-rss_limit_mb=2048",
        "-workers=1",
        "-print_final_stats=1",
        f"-artifact_prefix={out / target.name}/",
    ]
    folders = [str(out / target.name / "corpus"), *(str(seed) for seed in target.seeds)]
    return [sys.executable, "-m", *target.command, *flags, *folders]


def run(targets: list[Target], seconds: int, out: Path) -> list[str]:
    """Run each target in turn; the names of those that found something."""
    failed = []
    for target in targets:
        (out / target.name / "corpus").mkdir(parents=True, exist_ok=True)
        print(f"== fuzz {target.name} for {seconds}s", flush=True)
        found = subprocess.run(command(target, seconds, out), check=False).returncode != 0
        if found or any((out / target.name).glob("*-*")):
            failed.append(target.name)
    return failed


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m tests.fuzz`; exit 1 when any target found a crash."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument("--out", type=Path, default=Path("test-output/fuzz"))
    parser.add_argument("--only", default="", help="comma-separated targets: " + ", ".join(t.name for t in TARGETS))
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(",")))
    unknown = wanted - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    failed = run([t for t in TARGETS if not wanted or t.name in wanted], args.seconds, args.out)
    for name in failed:
        print(f"fuzz {name}: found a crash; the input is in {args.out / name}/", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
