"""Regenerate the bundled sample feeds from `papers.json` (run: python -m digest.samples.build).

`papers.json` holds real titles, abstracts, dates and upvote counts from the Hugging Face Daily
Papers page, and each paper's real arXiv id and author list, verified by title against the public
sources listed in PROVENANCE.md (the page itself shows only author counts). The categories are
not verified and are placeholders, as are the announce types and the Hugging Face author and
discussion ids that the functions below make up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent


def load_papers() -> list[dict[str, Any]]:
    """The sample paper metadata."""
    data: list[dict[str, Any]] = json.loads((HERE / "papers.json").read_text(encoding="utf-8"))
    return data


def arxiv_rss(papers: list[dict[str, Any]], announced: datetime, replaced: int = 2) -> str:
    """An rss.arxiv.org listing: every paper announced `new` or `cross`, plus a few `replace`."""
    day = format_datetime(announced)
    items = []
    for n, p in enumerate(papers):
        kind = "replace" if n >= len(papers) - replaced else ("cross" if n % 5 == 4 else "new")
        cats = "".join(f"<category>{escape(c)}</category>" for c in p["categories"])
        items.append(
            f"<item><title>{escape(p['title'])}</title><link>https://arxiv.org/abs/{p['id']}</link>"
            f"<description>arXiv:{p['id']}v{2 if kind == 'replace' else 1} Announce Type: {kind} \n"
            f"Abstract: {escape(p['abstract'])}</description>"
            f'<guid isPermaLink="false">oai:arXiv.org:{p["id"]}v1</guid>{cats}'
            f"<pubDate>{day}</pubDate><arxiv:announce_type>{kind}</arxiv:announce_type>"
            "<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>"
            f"<dc:creator>{escape(', '.join(p['authors']))}</dc:creator></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" version="2.0"><channel>'
        "<title>cs.AI+cs.CL+cs.LG+cs.CV updates on arXiv.org</title>"
        "<link>http://rss.arxiv.org/rss/cs.AI+cs.CL+cs.LG+cs.CV</link>"
        "<description>cs.AI+cs.CL+cs.LG+cs.CV updates on the arXiv.org e-print archive.</description>"
        f"<language>en-us</language><lastBuildDate>{day}</lastBuildDate><pubDate>{day}</pubDate>"
        "<skipDays><day>Saturday</day><day>Sunday</day></skipDays>\n" + "\n".join(items) + "\n</channel></rss>\n"
    )


def hf_json(papers: list[dict[str, Any]], day: str, withdrawn: int = 1) -> str:
    """A huggingface.co/api/daily_papers?date=DAY response; the last `withdrawn` are withdrawn."""
    items = []
    for n, p in enumerate(papers):
        paper: dict[str, Any] = {
            "id": p["id"],
            "authors": [{"_id": f"a{n}{k}", "name": a, "hidden": False} for k, a in enumerate(p["authors"])],
            "publishedAt": p["published"].replace("Z", ".000Z"),
            "submittedOnDailyAt": f"{day}T04:12:00.000Z",
            "title": p["title"],
            "summary": p["abstract"],
            "upvotes": p["upvotes"],
            "discussionId": f"d{n}",
        }
        if n >= len(papers) - withdrawn:
            paper["withdrawnAt"] = f"{day}T09:00:00.000Z"
        items.append(
            {
                "paper": paper,
                "publishedAt": paper["publishedAt"],
                "title": p["title"],
                "summary": p["abstract"],
                "numComments": n % 4,
                "isAuthorParticipating": False,
            }
        )
    return json.dumps(items, indent=1, ensure_ascii=False) + "\n"


def feeds() -> dict[str, str]:
    """The demo feeds, by file name, as built from `papers.json`."""
    papers = load_papers()
    announced = datetime(2025, 11, 4, 0, 0, tzinfo=UTC)
    return {
        "arxiv-listing.rss": arxiv_rss(papers[:40], announced),
        "hf-daily-papers.json": hf_json(papers[25:55], "2025-11-04"),
    }


def main() -> None:
    """Write the demo feeds next to this file."""
    for name, text in feeds().items():
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
