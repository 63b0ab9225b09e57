"""A big day, generated deterministically from a seed: readers with realistic topics, and new papers.

Everything is written straight into the database with SQLAlchemy Core bulk inserts (executemany in
batches), never through the ORM one object at a time. The same seed always gives the same rows.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, text
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine

from bench.records import TopicStats, TopTopic
from digest.models import (
    Delivery,
    Frequency,
    Notice,
    Paper,
    ReaderModel,
    Subscriber,
    SubscriberStatus,
    Suppression,
    Vote,
)
from digest.parse import arxiv_urls
from digest.query import QueryError, parse_query

SAMPLES = Path(__file__).resolve().parent.parent / "digest" / "samples" / "papers.json"
BATCH = 5_000

# What readers of an AI/ML digest actually type: the concept, and the spellings they OR together.
CONCEPTS: list[tuple[str, ...]] = [
    ('"large language models"', "LLM"),
    ('"long context"', '"long-context"', '"context window"'),
    ('"KV cache"', '"key-value cache"'),
    ('"retrieval augmented generation"', "RAG"),
    ('"in-context learning"', "ICL"),
    ('"chain of thought"', "CoT"),
    ('"reinforcement learning"', "RL"),
    ('"mixture of experts"', "MoE"),
    ("diffusion", '"diffusion models"'),
    ("agents", '"agentic"', '"LLM agents"'),
    ('"multi-agent"', '"multi agent"'),
    ('"tool use"', '"tool calling"', '"function calling"'),
    ("memory", '"long-term memory"'),
    ("quantization", '"low-bit"'),
    ("distillation", '"knowledge distillation"'),
    ('"speculative decoding"', '"draft model"'),
    ('"state space models"', "Mamba", "SSM"),
    ('"vision language models"', "VLM", '"vision-language"'),
    ('"video understanding"', '"long video"'),
    ('"video generation"', '"text-to-video"'),
    ('"text-to-image"', '"image generation"'),
    ('"speech recognition"', "ASR"),
    ('"text-to-speech"', "TTS"),
    ("benchmark", "benchmarking", '"evaluation suite"'),
    ("hallucination", "factuality"),
    ("alignment", "RLHF", "DPO"),
    ('"reward model"', '"reward modeling"'),
    ('"preference optimization"', "DPO"),
    ('"instruction tuning"', '"instruction-tuned"'),
    ("LoRA", '"parameter-efficient"', "PEFT"),
    ('"scaling laws"', "scaling"),
    ('"test-time scaling"', '"test-time compute"'),
    ("reasoning", '"math reasoning"'),
    ('"theorem proving"', "Lean"),
    ('"code generation"', '"program synthesis"'),
    ('"software engineering"', '"GitHub issues"', "SWE-bench"),
    ("tokenizer", "tokenization"),
    ("multilingual", '"cross-lingual"', '"low-resource languages"'),
    ('"machine translation"', "translation"),
    ("summarization", '"text summarization"'),
    ('"question answering"', "QA"),
    ('"knowledge graph"', '"knowledge graphs"'),
    ("recommendation", '"recommender systems"'),
    ('"time series"', "forecasting"),
    ("protein", '"drug discovery"', "molecule"),
    ("medical", "clinical", "EHR"),
    ('"world model"', '"world models"'),
    ("robotics", '"robot learning"', "manipulation"),
    ('"embodied agents"', '"embodied AI"'),
    ('"3D reconstruction"', '"gaussian splatting"', "NeRF"),
    ('"object detection"', "segmentation"),
    ('"federated learning"', '"on-device"'),
    ('"differential privacy"', "privacy"),
    ('"adversarial attacks"', "jailbreak", '"red teaming"'),
    ("interpretability", '"sparse autoencoders"', '"mechanistic interpretability"'),
    ('"synthetic data"', '"data generation"'),
    ('"data curation"', '"data selection"', '"data quality"'),
    ('"contrastive learning"', '"self-supervised"'),
    ('"graph neural networks"', "GNN"),
    ("pruning", "sparsity"),
    ('"positional embeddings"', "RoPE", '"position encoding"'),
    ('"attention mechanism"', '"sparse attention"', '"linear attention"'),
    ('"inference efficiency"', '"efficient inference"', "serving"),
    ("compression", '"model compression"'),
    ('"document understanding"', "OCR", '"table understanding"'),
    ('"GUI agents"', '"web agents"', '"computer use"'),
    ("music", '"audio generation"'),
    ('"visual question answering"', "VQA"),
    ("multimodal", '"multi-modal"'),
    ('"continual learning"', '"catastrophic forgetting"'),
    ('"prompt engineering"', "prompting"),
    ('"self-improvement"', '"self-refine"', '"self-correction"'),
    ("uncertainty", "calibration"),
    ('"legal"', '"financial"'),
    ("education", "tutoring"),
    ('"vulnerability detection"', "security"),
    ('"dense retrieval"', "embeddings", "reranking"),
    ('"semantic search"', '"information retrieval"'),
    ('"open-source"', '"open weights"'),
    ('"pretraining"', '"pre-training"'),
]
EXCLUDES = ["survey", "review", "benchmark", "medical", "position", "tutorial", "dataset", "workshop"]
FIELDS = ["title", "abstract"]
CATEGORY_MIX: list[tuple[str, float]] = [
    ("cs.CL", 30), ("cs.LG", 22), ("cs.CV", 18), ("cs.AI", 12), ("cs.RO", 3), ("stat.ML", 3), ("cs.IR", 3),
    ("cs.SE", 3), ("cs.CR", 2), ("eess.AS", 1.5), ("cs.SD", 1), ("cs.HC", 1), ("q-bio.QM", 0.5), ("math.OC", 0.5),
]  # fmt: skip
FIRST_NAMES = [
    "Ada", "Aisha", "Ana", "Arjun", "Chen", "Daniel", "Elena", "Fatima", "Grace", "Hiroshi", "Ines", "Jin", "Jonas",
    "Kwame", "Leila", "Lucía", "Marta", "Mei", "Noah", "Olga", "Pierre", "Priya", "Rafael", "Sofia", "Søren",
    "Tomás", "Wei", "Yann", "Yuki", "Zara", "Zoë", "Amir", "Björn", "Chloé", "Dmitri", "Emeka", "Farah", "Gustavo",
]  # fmt: skip
LAST_NAMES = [
    "Ali", "Bello", "Berg", "Costa", "García", "Gupta", "Haddad", "Iyer", "Khan", "Kim", "Li", "Liu", "Martin",
    "Mensah", "Moreau", "Müller", "Nasser", "Novak", "Park", "Pérez", "Petrova", "Ricci", "Rossi", "Sato",
    "Sharma", "Silva", "Tanaka", "Wang", "Zhang", "Okafor", "Nguyen", "Dubois", "Kowalski", "Andersen", "Yılmaz",
]  # fmt: skip
DOMAINS = ["example.org", "example.com", "example.net", "mail.example.org", "lab.example.edu"]
CATEGORIES = [c for c, _w in CATEGORY_MIX]
CATEGORY_WEIGHTS = list(itertools.accumulate(w for _c, w in CATEGORY_MIX))
AUTHORS = [f"{f} {la}" for f in FIRST_NAMES for la in LAST_NAMES]


@dataclass(frozen=True)
class Day:
    """The generated day: its clock and sizes."""

    now: datetime
    subscribers: int
    papers: int
    seed: int
    queries: list[str]
    history: int = 0  # earlier papers: what readers gave as examples and voted on
    voters: int = 0


def bench_now() -> datetime:
    """The moment the day is sent: now, to the minute (real Celery workers stamp claims with the real
    clock, so the day is laid out relative to it; its content depends only on the seed)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _phrase(rng: random.Random, concept: Sequence[str]) -> str:
    return concept[0] if len(concept) == 1 or rng.random() < 0.6 else rng.choice(concept)


@dataclass(frozen=True)
class _Draw:
    """What one topic is made of: the generator, two distinct concepts, the authors to cite."""

    rng: random.Random
    c1: Sequence[str]
    c2: Sequence[str]
    authors: Sequence[str]


def _or_list(d: _Draw) -> str | None:
    return " OR ".join(d.c1[: d.rng.randint(2, len(d.c1))]) if len(d.c1) > 1 else None


def _excluded(d: _Draw) -> str:
    return f"{_phrase(d.rng, d.c1)} {d.rng.choice(['-', 'NOT '])}{d.rng.choice(EXCLUDES)}"


def _in_title(d: _Draw) -> str:
    return f"title:{_phrase(d.rng, d.c1)}"


def _in_category(d: _Draw) -> str:
    rng = d.rng
    return (
        f"{_phrase(rng, d.c1)} cat:{rng.choice(CATEGORIES)}" if rng.random() < 0.8 else f"cat:{rng.choice(CATEGORIES)}"
    )


def _by_author(d: _Draw) -> str:
    name = d.rng.choice(d.authors)
    return f'author:"{name}"' if d.rng.random() < 0.6 else f"author:{name.split()[-1]}"


def _group(d: _Draw) -> str:
    also = d.rng.choice(["reasoning", "efficient", "benchmark", "agents", "evaluation"])
    return f"({_phrase(d.rng, d.c1)} OR {_phrase(d.rng, d.c2)}) AND {also}"


def _both(d: _Draw) -> str:
    return f"{_phrase(d.rng, d.c1)} {_phrase(d.rng, d.c2)}"


def _in_abstract(d: _Draw) -> str:
    return f"abstract:{_phrase(d.rng, d.c1)}"


def _or_list_excluded(d: _Draw) -> str | None:
    return f"{' OR '.join(d.c1[:2])} -{d.rng.choice(EXCLUDES)}" if len(d.c1) > 1 else None


def _excluded_from_title(d: _Draw) -> str:
    return f"{_phrase(d.rng, d.c1)} -title:{d.rng.choice(EXCLUDES)}"


# Every shape of the query language, and how often readers write it (None: this draw cannot make it).
SHAPES: list[tuple[Callable[[_Draw], str | None], int]] = [
    (_or_list, 22), (_excluded, 14), (_in_title, 8), (_in_category, 12), (_by_author, 6), (_group, 8),
    (_both, 10), (_in_abstract, 4), (_or_list_excluded, 6), (_excluded_from_title, 4),
]  # fmt: skip


def _valid(query: str) -> bool:
    try:
        parse_query(query)
    except QueryError:
        return False
    return True


def make_queries(rng: random.Random, authors: Sequence[str], count: int = 360) -> list[str]:
    """A few hundred distinct, valid topics: plain words and phrases, OR lists, exclusions, field
    prefixes, categories, authors and groups — the shapes the README documents."""
    # The plain forms first: the most popular topics are the simple ones.
    out = dict.fromkeys(concept[0] for concept in CONCEPTS)
    shapes, weights = [shape for shape, _w in SHAPES], [w for _shape, w in SHAPES]
    guard = 0
    while len(out) < count and guard < count * 50:
        guard += 1
        shape = rng.choices(shapes, weights)[0]
        c1, c2 = rng.sample(CONCEPTS, 2)
        query = shape(_Draw(rng, c1, c2, authors))
        if query is not None and _valid(query):
            out[query] = None
    queries = list(out)
    rng.shuffle(queries)
    # Keep the very plain, popular ones near the head of the Zipf ranking, as on a real site.
    head = [q for q in queries if q in {c[0] for c in CONCEPTS[:20]}]
    tail = [q for q in queries if q not in head]
    return head + tail


def zipf_weights(n: int, s: float = 1.07) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n."""
    return list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))


THEME_WEIGHTS = zipf_weights(len(CONCEPTS), 0.8)  # a paper's theme: some concepts are far more written about


def _load_samples() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(SAMPLES.read_text(encoding="utf-8"))
    return data


_SPLIT_TITLE = re.compile(r"^(.{6,60}?)(: | via | for | with | in | from | using )(.+)$")
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _title_parts(titles: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    heads, tails = [], []
    for t in titles:
        m = _SPLIT_TITLE.match(t)
        if m:
            heads.append(m.group(1))
            tails.append((m.group(2), m.group(3)))
    return heads, tails


@dataclass(frozen=True)
class _Material:
    """What new papers are varied from: the shipped samples, their title halves and sentences."""

    samples: list[dict[str, Any]]
    heads: list[str]
    tails: list[tuple[str, str]]
    sentences: list[list[str]]

    @classmethod
    def load(cls) -> _Material:
        samples = _load_samples()
        heads, tails = _title_parts([p["title"] for p in samples])
        return cls(samples, heads, tails, [_SENTENCES.split(p["abstract"]) for p in samples])


def _title(rng: random.Random, m: _Material, base: dict[str, Any], theme: str) -> str:
    """A sample's title, or two samples' halves recombined, sometimes about the theme."""
    roll = rng.random()
    if roll < 0.45 and m.heads:
        sep, tail = rng.choice(m.tails)
        title = f"{rng.choice(m.heads)}{sep}{tail}"
    elif roll < 0.75:
        title = f"{base['title']}"
    else:
        head = rng.choice(m.heads) if m.heads else base["title"]
        title = f"{head}: {theme.title()} for {rng.choice(m.tails)[1] if m.tails else 'Everyone'}"
    if rng.random() < 0.35:
        title = f"{title} with {theme}"
    return title


def _abstract(rng: random.Random, m: _Material, own: list[str], theme: str) -> str:
    """The sample's first sentence, sentences of other samples, and one about the theme."""
    body = [own[0]]
    for _ in range(rng.randint(3, 7)):
        pool = m.sentences[rng.randrange(len(m.sentences))]
        body.append(pool[rng.randrange(len(pool))])
    body.insert(rng.randint(1, len(body)), f"We study {theme} in this setting.")
    return " ".join(body)


def _paper(rng: random.Random, m: _Material, n: int, now: datetime) -> dict[str, Any]:
    """The `n`th new paper of the day, as a row of the paper table."""
    base = m.samples[rng.randrange(len(m.samples))]
    theme = CONCEPTS[rng.choices(range(len(CONCEPTS)), cum_weights=THEME_WEIGHTS)[0]][0].strip('"')
    title = _title(rng, m, base, theme)
    abstract = _abstract(rng, m, m.sentences[m.samples.index(base)], theme)
    authors = rng.sample(AUTHORS, min(len(AUTHORS), max(1, int(rng.lognormvariate(1.6, 0.55)))))
    primary = rng.choices(CATEGORIES, cum_weights=CATEGORY_WEIGHTS)[0]
    extra = rng.choices(CATEGORIES, cum_weights=CATEGORY_WEIGHTS, k=rng.randint(0, 2))
    pid = f"{now:%y%m}.{10000 + n:05d}"
    abs_url, pdf_url = arxiv_urls(pid)
    first_seen = now - timedelta(seconds=rng.randint(60, 6 * 3600))
    upvotes = None if rng.random() < 0.6 else int(rng.paretovariate(1.3)) - 1
    if upvotes is not None and rng.random() < 0.1:  # announced days ago on Hugging Face, still climbing
        first_seen -= timedelta(days=rng.randint(1, 5))
    return {
        "id": pid,
        "title": title,
        "authors": authors,
        "abstract": abstract,
        "categories": list(dict.fromkeys([primary, *extra])),
        "published": first_seen - timedelta(hours=rng.randint(6, 48)),
        "abs_url": abs_url,
        "pdf_url": pdf_url,
        "upvotes": upvotes,
        "upvote_history": [] if upvotes is None else _climb(rng, upvotes, first_seen, now),
        "on_hf": upvotes is not None,
        "needs_arxiv": False,
        "sources": ["arxiv", "hf-daily-papers"] if upvotes is not None else ["arxiv"],
        "authoritative": True,
        "first_seen": first_seen,
        "updated_at": first_seen,
    }


def _climb(rng: random.Random, upvotes: int, first_seen: datetime, now: datetime) -> list[list[int]]:
    """The counts successive fetches saw, rising to `upvotes`: [count, unix seconds] each time it rose."""
    fetches = sorted(rng.uniform(first_seen.timestamp(), now.timestamp()) for _ in range(rng.randint(0, 3)))
    counts = sorted({rng.randint(0, upvotes) for _ in fetches} - {upvotes})
    seen = [first_seen.timestamp(), *fetches][: len(counts) + 1]
    return [[count, int(at)] for count, at in zip([*counts, upvotes], seen, strict=False)]


def make_papers(rng: random.Random, count: int, now: datetime) -> Iterator[dict[str, Any]]:
    """`count` new papers varied from the shipped sample metadata: recombined titles and abstract
    sentences, a theme from the topic vocabulary, synthetic authors and arXiv categories."""
    material = _Material.load()
    for n in range(count):
        yield _paper(rng, material, n, now)


HISTORY_DAYS = (2, 25)  # earlier papers were first seen this many days ago
SEMANTIC_SHARE = 0.2  # readers with a `like:` topic (a description, or example papers)
VOTER_SHARE = 0.1  # readers who voted on earlier papers (enough likes for a model)


def history_size(papers: int) -> int:
    """How many earlier papers the day has: a fifth of the new ones, at least 50."""
    return max(50, papers // 5)


def make_history(rng: random.Random, count: int, now: datetime) -> Iterator[dict[str, Any]]:
    """`count` papers of the last weeks (outside every window of the day, not on Hugging Face):
    the examples readers gave and the papers they voted on."""
    material = _Material.load()
    for n, pid in enumerate(history_ids(now, count)):
        row = _paper(rng, material, n, now)
        row.update(id=pid, abs_url=arxiv_urls(pid)[0], pdf_url=arxiv_urls(pid)[1])
        seen = now - timedelta(days=rng.randint(*HISTORY_DAYS), seconds=rng.randint(0, 86_399))
        row.update(upvotes=None, upvote_history=[], on_hf=False, sources=["arxiv"], first_seen=seen, updated_at=seen)
        row["published"] = seen - timedelta(hours=12)
        yield row


def history_ids(now: datetime, count: int) -> list[str]:
    """The ids `make_history` gives its papers (the day's papers are numbered from 10000)."""
    return [f"{now:%y%m}.{60_000 + n:05d}" for n in range(count)]


def _semantic_topic(rng: random.Random, examples: Sequence[str]) -> str:
    """A `like:` topic as readers write them: a description of what they want, or 1-3 example
    papers, sometimes with an exclusion."""
    if rng.random() < 0.5 or not examples:
        c1, c2 = rng.sample(CONCEPTS, 2)
        text = f"{c1[0].strip(chr(34))} for {c2[0].strip(chr(34))}" if rng.random() < 0.5 else c1[0].strip('"')
        topic = f'like:"{text}"'
    else:
        topic = " OR ".join(f"like:{pid}" for pid in rng.sample(examples, rng.randint(1, min(3, len(examples)))))
    return f"{topic} -{rng.choice(EXCLUDES)}" if rng.random() < 0.2 else topic


def make_subscribers(
    rng: random.Random,
    count: int,
    queries: Sequence[str],
    now: datetime,
    examples: Sequence[str] = (),
    semantic_share: float = SEMANTIC_SHARE,
) -> Iterator[dict[str, Any]]:
    """`count` active, long-confirmed daily readers due at 00:00 UTC, 1–3 Zipf-drawn topics each;
    about 10% also (or only, half of them) get the trending papers; `semantic_share` have a `like:`
    topic too (on `examples`, earlier papers, for the example kind)."""
    cum = zipf_weights(len(queries))
    ranks = range(len(queries))
    for n in range(count):
        k = rng.choices((1, 2, 3), (50, 35, 15))[0]
        picked: dict[str, None] = {}
        while len(picked) < k:
            picked[queries[rng.choices(ranks, cum_weights=cum)[0]]] = None
        if rng.random() < semantic_share:
            picked[_semantic_topic(rng, examples)] = None
        joined = now - timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86_399))
        first = rng.choice(FIRST_NAMES).lower().replace("ø", "o").replace("é", "e").replace("í", "i")
        first = first.encode("ascii", "ignore").decode()
        last = rng.choice(LAST_NAMES).lower().encode("ascii", "ignore").decode()
        roll = rng.random()
        trending = rng.random()
        yield {
            "email": f"{first}.{last}.{n}@{DOMAINS[n % len(DOMAINS)]}",
            "handle": f"bench-{n:010d}",  # unique and deterministic; draws nothing from the seed
            "status": SubscriberStatus.ACTIVE,
            "topics": [] if trending < 0.05 else list(picked),
            "trending": (5, 10, 10, 20)[int(trending * 80) % 4] if trending < 0.1 else None,
            "frequency": Frequency.DAILY,
            "send_hour": 0,
            "timezone": "UTC",
            "weekly_day": 0,
            "min_upvotes": 5 if roll < 0.05 else None,
            "max_papers": 10 if roll > 0.9 else (50 if roll > 0.85 else 25),
            "created_at": joined,
            "confirmed_at": joined,
            "unsubscribed_at": None,
            "requested_at": None,
        }


def _batched(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(itertools.islice(rows, size)):
        yield batch


def clear(engine: Engine) -> None:
    """Empty the tables the benchmark fills (only those: the database or schema is the bench's own)."""
    with engine.begin() as conn:
        for table in (Delivery, Notice, Suppression, Vote, ReaderModel, Subscriber, Paper):
            conn.execute(delete(table.__table__))  # type: ignore[union-attr]


def reset_deliveries(engine: Engine) -> int:
    """Delete every delivery row, so the next run starts from the same state. Returns how many.
    On PostgreSQL the table is truncated: a DELETE would leave the last run's rows as dead tuples
    that every query of the next run scans until autovacuum gets to them."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        count = int(conn.execute(sa_select(func.count()).select_from(table)).scalar_one())
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {table.name}"))
        else:
            conn.execute(delete(table))
    return count


def analyze(engine: Engine) -> None:
    """PostgreSQL's statistics for the generated tables, as a live database has them (autovacuum
    analyzes a table as it changes, but a bulk load outruns its first look, and the planner would
    plan a page of 200 readers from a table it thinks is empty: 24 ms a page instead of 0.4)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for model in (Paper, Subscriber, Vote):
            conn.execute(text(f"ANALYZE {_table(model).name}"))


def make_votes(
    rng: random.Random, readers: Sequence[int], papers: Sequence[str], now: datetime, share: float = VOTER_SHARE
) -> Iterator[dict[str, Any]]:
    """`share` of the readers (VOTER_SHARE) voted on earlier papers: 3-8 "more like this" (enough for a
    model) and 0-3 "less like this" each, a day or more ago."""
    for sid in readers:
        if rng.random() >= share:
            continue
        chosen = rng.sample(papers, min(len(papers), rng.randint(3, 8) + rng.randint(0, 3)))
        likes = max(3, len(chosen) - rng.randint(0, 3))
        for n, pid in enumerate(chosen):
            at = now - timedelta(days=1, seconds=rng.randint(0, 20 * 86_400))
            yield {"subscriber_id": sid, "paper_id": pid, "value": 1 if n < likes else -1, "created_at": at}


def _table(model: type[Any]) -> Any:
    return model.__table__


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    inserted = 0
    with engine.begin() as conn:
        for batch in _batched(rows, BATCH):
            conn.execute(insert(table), batch)
            inserted += len(batch)
    return inserted


def generate(engine: Engine, subscribers: int, papers: int, seed: int, now: datetime, learning: bool = True) -> Day:
    """Fill the database with the day: `papers` new papers and the earlier ones, `subscribers`
    readers and their votes, in batches."""
    rng = random.Random(seed)
    queries = make_queries(random.Random(seed + 1), AUTHORS)
    clear(engine)
    earlier = history_size(papers)
    papers_t, subs_t, votes_t = (_table(m) for m in (Paper, Subscriber, Vote))
    _insert(engine, papers_t, make_papers(random.Random(seed + 2), papers, now))
    _insert(engine, papers_t, make_history(random.Random(seed + 3), earlier, now))
    examples = history_ids(now, earlier)
    semantic, voting = (SEMANTIC_SHARE, VOTER_SHARE) if learning else (0.0, 0.0)
    _insert(engine, subs_t, make_subscribers(rng, subscribers, queries, now, examples, semantic))
    with engine.connect() as conn:
        readers = list(conn.execute(sa_select(subs_t.c.id).order_by(subs_t.c.id)).scalars())
    _insert(engine, votes_t, make_votes(random.Random(seed + 4), readers, examples, now, voting))
    with engine.connect() as conn:
        voters = conn.execute(sa_select(func.count(func.distinct(votes_t.c.subscriber_id)))).scalar_one()
    analyze(engine)
    return Day(
        now=now, subscribers=subscribers, papers=papers, seed=seed, queries=queries, history=earlier, voters=voters
    )


def topic_stats(engine: Engine) -> TopicStats:
    """How the topics are spread (distinct topics in use, share of the most common)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    total = semantic = last = 0
    sub = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                sa_select(sub.c.id, sub.c.topics).where(sub.c.id > last).order_by(sub.c.id).limit(BATCH)
            ).all()
            if not rows:
                break
            for _id, topics in rows:
                counts.update(topics)
                total += len(topics)
                semantic += any("like:" in t for t in topics)
            last = rows[-1][0]
        readers = conn.execute(sa_select(func.count()).select_from(sub)).scalar_one()
    return TopicStats(
        readers=readers,
        distinct_topics=len(counts),
        topics_per_reader=round(total / max(1, readers), 2),
        top_topics=[TopTopic(t, c) for t, c in counts.most_common(5)],
        semantic_readers=semantic,
    )
