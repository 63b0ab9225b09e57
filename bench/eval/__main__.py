"""`python -m bench.eval`: the relevance evaluation; writes bench/eval/results.md and results.json.

Options: --limit N (the first N papers only, with interests reduced to them: a quick smoke run),
--no-sweep (skip the threshold sweep), --out DIR (where the results go)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.eval.evaluate import HERE, check_labels, load_interests, load_papers, run, subset
from bench.eval.report import markdown
from digest.embed import MINILM, load_embedder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval", description=__doc__)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    papers, interests = load_papers(), load_interests()
    problems = check_labels(papers, interests)
    if problems:
        print(*problems, sep="\n", file=sys.stderr)
        return 1
    if args.limit is not None:
        papers, interests = subset(papers, interests, args.limit)
    embedder = load_embedder(MINILM)
    assert embedder is not None
    started = time.monotonic()
    report = run(papers, interests, embedder, sweep_thresholds=not args.no_sweep)
    report["seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    text = markdown(report)
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
