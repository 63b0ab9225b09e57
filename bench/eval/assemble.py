"""Assemble bench/eval/papers.jsonl from the bundled samples and two public arXiv-listing mirrors
(bench/eval/PROVENANCE.md says which commits and paths). Run once by hand, not by `make eval`:

    python -m bench.eval.assemble /work/.mirror/CSQianDong+Awesome-arXiv-Daily-Reporter/repo \
        /work/.mirror/a1henu+arxiv-daily-scroll/repo
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from digest.parse import parse_arxiv_rss, parse_hf_json

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent.parent / "digest" / "samples"
OUT = HERE / "papers.jsonl"
# (commit, day folder) of CSQianDong/Awesome-arXiv-Daily-Reporter: cs.CL, cs.AI, cs.IR listings.
CL_COMMIT = "48f8e84449034969f0e96fc813988460e9003492"
CL_DAYS = ("1-Dec-2025", "2-Dec-2025", "3-Dec-2025")
CL_SUBJECTS = {"NLP": "cs.CL", "AI": "cs.AI", "IR": "cs.IR"}
# a1henu/arxiv-daily-scroll: arXiv API answers for cat:cs.CV OR cat:cs.RO, one file per day.
CV_COMMIT = "81a31ef6075d1ca996f8603839bb05e61ed1b554"
CV_DAYS = ("2025-10-12", "2025-10-13", "2025-10-14", "2025-10-15", "2025-10-16")
ABSTRACT_CHARS = 2000
_SPACE = re.compile(r"\s+")
_ID = re.compile(r"(\d{4}\.\d{4,5})")


def _git_show(repo: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", repo, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _row(pid: str, title: str, abstract: str, categories: list[str], source: str) -> dict[str, Any]:
    return {
        "id": pid,
        "title": _clean(title),
        "abstract": _clean(abstract)[:ABSTRACT_CHARS],
        "categories": categories,
        "source": source,
    }


def samples() -> list[dict[str, Any]]:
    """The bundled samples: papers.json, the arXiv RSS listing, the Hugging Face daily papers."""
    rows = [
        _row(p["id"], p["title"], p["abstract"], list(p.get("categories", [])), "sample:papers.json")
        for p in json.loads((SAMPLES / "papers.json").read_text())
    ]
    for name, parse in (("arxiv-listing.rss", parse_arxiv_rss), ("hf-daily-papers.json", parse_hf_json)):
        for paper in parse((SAMPLES / name).read_bytes()).papers:
            rows.append(_row(paper.id, paper.title, paper.abstract, paper.categories, f"sample:{name}"))
    return rows


def listings_cl(repo: str) -> list[dict[str, Any]]:
    """cs.CL / cs.AI / cs.IR days of CSQianDong/Awesome-arXiv-Daily-Reporter (Python-literal lines)."""
    rows: dict[str, dict[str, Any]] = {}
    for day in CL_DAYS:
        for folder, category in CL_SUBJECTS.items():
            for line in _git_show(repo, CL_COMMIT, f"{day}/{folder}/papers.jsonl").splitlines():
                if not line.strip():
                    continue
                item = ast.literal_eval(line)
                found = _ID.search(item["arxiv_id"])
                if not found:
                    continue
                pid = found.group(1)
                if pid in rows:
                    rows[pid]["categories"].append(category)
                    continue
                source = f"CSQianDong/Awesome-arXiv-Daily-Reporter:{day}/{folder}"
                rows[pid] = _row(pid, item["title"], item["abstract"], [category], source)
    return list(rows.values())


def listings_cv(repo: str) -> list[dict[str, Any]]:
    """cs.CV / cs.RO days of a1henu/arxiv-daily-scroll (the arXiv API's answers as JSON)."""
    rows = []
    for day in CV_DAYS:
        for item in json.loads(_git_show(repo, CV_COMMIT, f"data/{day}/arxiv.json"))["papers"]:
            found = _ID.search(item["arxiv_id"])
            if found:
                source = f"a1henu/arxiv-daily-scroll:data/{day}/arxiv.json"
                rows.append(_row(found.group(1), item["title"], item["summary"], ["cs.CV|cs.RO"], source))
    return rows


def main(argv: list[str]) -> int:
    cl_repo, cv_repo = argv
    seen: set[str] = set()
    kept = []
    for row in samples() + listings_cl(cl_repo) + listings_cv(cv_repo):
        if row["id"] in seen or not row["title"] or not row["abstract"]:
            continue
        seen.add(row["id"])
        kept.append(row)
    with OUT.open("w") as out:
        for row in kept:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(kept)} papers -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
