"""Move bench/eval's data to the sample papers' real arXiv ids (run once by hand, already applied):

    python -m bench.eval.remap_samples

digest/samples/PROVENANCE.md lists, for each sample paper kept, its real id and the placeholder id
it had, and the placeholder ids of the 18 papers it dropped. This rewrites papers.jsonl's sample
rows from the samples as they are now (`assemble.samples()`: the real ids, the same titles and
abstracts — checked) and every id in interests.json (examples and labels) through that map; the
dropped papers leave both files, with their labels (no judgement changes). Idempotent.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.eval.assemble import SAMPLES, samples
from bench.eval.evaluate import INTERESTS, PAPERS

_ID = re.compile(r"\d{4}\.\d{4,5}")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def id_map(provenance: Path = SAMPLES / "PROVENANCE.md") -> tuple[dict[str, str], set[str]]:
    """{placeholder id: real id} of the kept sample papers, and the placeholder ids of the dropped."""
    text = provenance.read_text()
    kept_part, dropped_part = text.split("## Dropped", 1)
    mapping = {}
    for line in kept_part.splitlines():
        cells = _cells(line)
        if len(cells) == 4 and _ID.fullmatch(cells[0]) and _ID.fullmatch(cells[3]):
            mapping[cells[3]] = cells[0]
    dropped = set()
    for line in dropped_part.splitlines():
        cells = _cells(line)
        if len(cells) == 3 and _ID.fullmatch(cells[0]):
            dropped.add(cells[0])
    return mapping, dropped


def main() -> int:
    mapping, dropped = id_map()
    rows = [json.loads(line) for line in PAPERS.read_text().splitlines() if line.strip()]
    fresh: dict[str, dict[str, Any]] = {}
    for row in samples():  # papers.json first (as assemble keeps it), then the feeds made from it
        fresh.setdefault(row["id"], row)
    others = [row for row in rows if not row["source"].startswith("sample:")]
    other_ids = {row["id"] for row in others}
    out = []
    for row in rows:
        if not row["source"].startswith("sample:"):
            out.append(row)
            continue
        pid = mapping.get(row["id"], row["id"])
        if row["id"] in dropped:
            continue
        new = fresh[pid]
        assert (new["title"], new["abstract"]) == (row["title"], row["abstract"]), pid
        assert pid not in other_ids, f"{pid} is a sample and a listing paper"
        out.append(new)
    PAPERS.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in out))
    raw = json.loads(INTERESTS.read_text())
    for item in raw["interests"]:
        assert not set(item["examples"]) & dropped, item["name"]
        item["examples"] = [mapping.get(pid, pid) for pid in item["examples"]]
        for key in ("relevant", "not_relevant"):
            item[key] = sorted(mapping.get(pid, pid) for pid in item[key] if pid not in dropped)
    INTERESTS.write_text(json.dumps(raw, indent=1, ensure_ascii=False))
    print(f"{len(rows)} -> {len(out)} papers; {len(mapping)} ids remapped, {len(dropped)} dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
