"""The bundled sample papers (digest/samples): real arXiv ids and authors, the same in every sample file."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from digest.parse import parse_arxiv_rss, parse_hf_json
from digest.samples import build

SAMPLES = Path(build.__file__).resolve().parent
PAPERS: list[dict[str, Any]] = build.load_papers()
BY_ID = {p["id"]: p for p in PAPERS}
DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
# New-style arXiv ids: YYMM.NNNN from 2007 to 2014, YYMM.NNNNN since 2015; an optional version.
NEW_STYLE_ID = re.compile(r"(?P<yy>\d\d)(?P<mm>\d\d)\.(?P<number>\d{4,5})(?:v[1-9]\d*)?")


def _id_problem(paper_id: str) -> str | None:
    """Why `paper_id` is not a well-formed new-style arXiv id, or None."""
    match = NEW_STYLE_ID.fullmatch(paper_id)
    if match is None:
        return "not YYMM.NNNNN"
    yy, mm, digits = int(match["yy"]), int(match["mm"]), len(match["number"])
    if not 1 <= mm <= 12:
        return f"month {mm:02d}"
    if yy < 7 or (yy, mm) < (7, 4):
        return "new-style ids start in April 2007"
    if digits != (5 if yy >= 15 else 4):
        return f"{digits} digits after the dot in 20{yy:02d}"
    return None


@pytest.mark.parametrize(
    ("paper_id", "problem"),
    [
        ("2505.21471", None),
        ("2505.21471v3", None),
        ("0704.0001", None),
        ("1412.7777", None),
        ("2513.00001", "month 13"),
        ("2500.00001", "month 00"),
        ("0703.0001", "new-style ids start in April 2007"),
        ("2505.2147", "4 digits after the dot in 2025"),
        ("1412.77777", "5 digits after the dot in 2014"),
        ("2505.21471v0", "not YYMM.NNNNN"),
        ("2505.21471 ", "not YYMM.NNNNN"),
        ("hep-th/9901001", "not YYMM.NNNNN"),
    ],
)
def test_the_id_check_itself(paper_id: str, problem: str | None) -> None:
    assert _id_problem(paper_id) == problem


def test_there_are_enough_samples_for_the_demo_feeds() -> None:
    assert len(PAPERS) >= 60  # the feeds take papers[:40] and papers[25:55]


def test_every_id_is_a_well_formed_new_style_arxiv_id() -> None:
    assert {p["id"]: _id_problem(p["id"]) for p in PAPERS if _id_problem(p["id"])} == {}


def test_ids_and_titles_are_unique() -> None:
    assert len(BY_ID) == len(PAPERS)
    assert len({re.sub(r"\W", "", p["title"].lower()) for p in PAPERS}) == len(PAPERS)


def test_the_id_fits_the_date() -> None:
    """YYMM is the month of the paper's date, or the next one (a paper sent on the last days of a month)."""
    wrong = {}
    for p in PAPERS:
        day = datetime.fromisoformat(p["published"])
        month = day.year * 12 + day.month - 1
        yy, mm = int(p["id"][:2]), int(p["id"][2:4])
        if (2000 + yy) * 12 + mm - 1 - month not in (0, 1):
            wrong[p["id"]] = p["published"]
    assert wrong == {}


def test_every_paper_has_authors_that_look_like_names() -> None:
    bad = {}
    for p in PAPERS:
        names = p["authors"]
        problems = [n for n in names if n != n.strip() or not re.search(r"[^\W\d_]{2}", n) or re.search(r"\d", n)]
        problems += [n for n in names if re.search(r"\bet al\b|\banonymous\b|\bauthor\b|,|\sand\s", n, re.I)]
        if not names or problems or len(set(names)) != len(names):
            bad[p["id"]] = names
    assert bad == {}


def test_the_authors_are_not_drawn_from_a_small_pool() -> None:
    """The old placeholder names combined 30 given names with 30 surnames; real author lists do not repeat so."""
    names = {n for p in PAPERS for n in p["authors"]}
    given = {n.split()[0] for n in names}
    surnames = {n.split()[-1] for n in names}
    assert len(names) > 300
    assert len(given) > 0.5 * len(names) and len(surnames) > 0.3 * len(names)
    counts: dict[str, int] = {}
    for n in (n for p in PAPERS for n in p["authors"]):
        counts[n] = counts.get(n, 0) + 1
    assert max(counts.values()) <= 5


def test_the_provenance_note_names_every_paper_and_only_those() -> None:
    text = (SAMPLES / "PROVENANCE.md").read_text(encoding="utf-8")
    section = text.split("## The papers", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if re.match(r"\| \d{4}\.\d{4,5} \|", line)]
    listed = {row[0].removeprefix("| "): row[1].replace("\\|", "|") for row in rows}
    assert listed == {p["id"]: p["title"] for p in PAPERS}
    assert len(rows) == len(PAPERS)


def test_the_feed_files_are_what_build_makes_of_papers_json() -> None:
    for name, text in build.feeds().items():
        assert (SAMPLES / name).read_text(encoding="utf-8") == text, f"{name} is stale: python -m digest.samples.build"


def test_the_arxiv_listing_agrees_with_papers_json() -> None:
    items = ET.fromstring((SAMPLES / "arxiv-listing.rss").read_bytes()).iter("item")
    seen = []
    for item in items:
        paper_id = item.findtext("link", "").removeprefix("https://arxiv.org/abs/")
        paper = BY_ID[paper_id]
        assert item.findtext("title") == paper["title"]
        assert item.findtext(DC_CREATOR) == ", ".join(paper["authors"])
        assert item.findtext("guid") == f"oai:arXiv.org:{paper_id}v1"
        seen.append(paper_id)
    assert len(seen) == 40 and len(set(seen)) == 40

    parsed = parse_arxiv_rss((SAMPLES / "arxiv-listing.rss").read_bytes())
    assert parsed.papers and len(parsed.papers) + len(parsed.skipped) == 40
    for got in parsed.papers:
        assert (got.title, got.authors) == (BY_ID[got.id]["title"], BY_ID[got.id]["authors"])
        assert got.abs_url == f"https://arxiv.org/abs/{got.id}" and got.pdf_url == f"https://arxiv.org/pdf/{got.id}"


def test_the_hugging_face_day_agrees_with_papers_json() -> None:
    items = json.loads((SAMPLES / "hf-daily-papers.json").read_bytes())
    assert len(items) == 30
    for item in items:
        paper = BY_ID[item["paper"]["id"]]
        assert item["paper"]["title"] == item["title"] == paper["title"]
        assert [a["name"] for a in item["paper"]["authors"]] == paper["authors"]
        assert item["paper"]["upvotes"] == paper["upvotes"]

    parsed = parse_hf_json((SAMPLES / "hf-daily-papers.json").read_bytes())
    assert len(parsed.papers) == 29 and len(parsed.skipped) == 1  # the last one is withdrawn
    for got in parsed.papers:
        assert (got.title, got.authors) == (BY_ID[got.id]["title"], BY_ID[got.id]["authors"])
