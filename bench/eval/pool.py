"""Pool the candidates to judge for each interest (how bench/eval/interests.json was labelled):
the union of what the boolean query matches, the 40 papers closest to the description, the 30
closest to any example, and a plain keyword search (the interest's `keywords` regex over title
and abstract). Prints the candidates not yet judged, for a person to read and label:

    python -m bench.eval.pool [interest …]
"""

from __future__ import annotations

import json
import re
import sys

import numpy as np

from bench.eval.evaluate import INTERESTS, build_index, embed_papers, load_papers, ranked_ids
from digest.embed import MINILM, load_embedder

SEMANTIC_TOP = 40
EXAMPLE_TOP = 30


def candidates(name: str) -> list[str]:
    papers = load_papers()
    embedder = load_embedder(MINILM)
    assert embedder is not None
    vectors = embed_papers(papers, embedder)
    item = next(i for i in json.loads(INTERESTS.read_text())["interests"] if i["name"] == name)
    ids = [p["id"] for p in papers]
    place = {pid: k for k, pid in enumerate(ids)}
    pool: dict[str, None] = {}
    for pid in ranked_ids(build_index(papers, vectors, embedder), [item["query"]]):
        pool[pid] = None
    text = vectors @ embedder.embed([item["description"]])[0]
    for k in np.argsort(-text)[:SEMANTIC_TOP]:
        pool[ids[k]] = None
    near = np.max(vectors @ vectors[[place[e] for e in item["examples"]]].T, axis=1)
    for k in np.argsort(-near)[: EXAMPLE_TOP + len(item["examples"])]:
        pool[ids[k]] = None
    pattern = re.compile(item["keywords"], re.I)
    for paper in papers:
        if pattern.search(paper["title"] + " " + paper["abstract"]):
            pool[paper["id"]] = None
    return list(pool)


def main(names: list[str]) -> int:
    papers = {p["id"]: p for p in load_papers()}
    items = json.loads(INTERESTS.read_text())["interests"]
    for item in items:
        if names and item["name"] not in names:
            continue
        judged = set(item["relevant"]) | set(item["not_relevant"])
        todo = [pid for pid in candidates(item["name"]) if pid not in judged]
        print(f"== {item['name']}: {len(todo)} to judge")
        for pid in todo:
            paper = papers[pid]
            print(f"{pid} | {paper['title'][:110]} | {paper['abstract'][:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
