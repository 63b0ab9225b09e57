"""A big day, generated deterministically from a seed: readers with realistic topics, and new papers.

Everything is written straight into the database with SQLAlchemy Core bulk inserts (executemany in
batches), never through the ORM one object at a time. The same seed always gives the same rows.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine

from digest.models import Delivery, Frequency, Notice, Paper, Subscriber, SubscriberStatus, Suppression
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


@dataclass(frozen=True)
class Day:
    """The generated day: its clock and sizes."""

    now: datetime
    subscribers: int
    papers: int
    seed: int
    queries: list[str]


def bench_now() -> datetime:
    """The moment the day is sent: now, to the minute (real Celery workers stamp claims with the real
    clock, so the day is laid out relative to it; its content depends only on the seed)."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _phrase(rng: random.Random, concept: Sequence[str]) -> str:
    return concept[0] if len(concept) == 1 or rng.random() < 0.6 else rng.choice(concept)


def make_queries(rng: random.Random, authors: Sequence[str], count: int = 360) -> list[str]:
    """A few hundred distinct, valid topics: plain words and phrases, OR lists, exclusions, field
    prefixes, categories, authors and groups — the shapes the README documents."""
    out: dict[str, None] = {}
    cats = [c for c, _w in CATEGORY_MIX]
    # The plain forms first: the most popular topics are the simple ones.
    for concept in CONCEPTS:
        out[concept[0]] = None
    shapes = ["or", "not", "title", "cat", "author", "group", "and", "abstract", "or-not", "minus-title"]
    weights = [22, 14, 8, 12, 6, 8, 10, 4, 6, 4]
    guard = 0
    while len(out) < count and guard < count * 50:
        guard += 1
        shape = rng.choices(shapes, weights)[0]
        c1, c2 = rng.sample(CONCEPTS, 2)
        if shape == "or" and len(c1) > 1:
            q = " OR ".join(c1[: rng.randint(2, len(c1))])
        elif shape == "not":
            q = f"{_phrase(rng, c1)} {rng.choice(['-', 'NOT '])}{rng.choice(EXCLUDES)}"
        elif shape == "title":
            q = f"title:{_phrase(rng, c1)}"
        elif shape == "cat":
            q = f"{_phrase(rng, c1)} cat:{rng.choice(cats)}" if rng.random() < 0.8 else f"cat:{rng.choice(cats)}"
        elif shape == "author":
            name = rng.choice(authors)
            q = f'author:"{name}"' if rng.random() < 0.6 else f"author:{name.split()[-1]}"
        elif shape == "group":
            also = rng.choice(["reasoning", "efficient", "benchmark", "agents", "evaluation"])
            q = f"({_phrase(rng, c1)} OR {_phrase(rng, c2)}) AND {also}"
        elif shape == "and":
            q = f"{_phrase(rng, c1)} {_phrase(rng, c2)}"
        elif shape == "abstract":
            q = f"abstract:{_phrase(rng, c1)}"
        elif shape == "or-not" and len(c1) > 1:
            q = f"{' OR '.join(c1[:2])} -{rng.choice(EXCLUDES)}"
        elif shape == "minus-title":
            q = f"{_phrase(rng, c1)} -title:{rng.choice(EXCLUDES)}"
        else:
            continue
        try:
            parse_query(q)
        except QueryError:
            continue
        out[q] = None
    queries = list(out)
    rng.shuffle(queries)
    # Keep the very plain, popular ones near the head of the Zipf ranking, as on a real site.
    head = [q for q in queries if q in {c[0] for c in CONCEPTS[:20]}]
    tail = [q for q in queries if q not in head]
    return head + tail


def zipf_weights(n: int, s: float = 1.07) -> list[float]:
    """Cumulative Zipf weights for ranks 1..n."""
    return list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))


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


def make_papers(rng: random.Random, count: int, now: datetime) -> Iterator[dict[str, Any]]:
    """`count` new papers varied from the shipped sample metadata: recombined titles and abstract
    sentences, a theme from the topic vocabulary, synthetic authors and arXiv categories."""
    samples = _load_samples()
    heads, tails = _title_parts([p["title"] for p in samples])
    sentences = [_SENTENCES.split(p["abstract"]) for p in samples]
    theme_weights = zipf_weights(len(CONCEPTS), 0.8)
    cat_names = [c for c, _w in CATEGORY_MIX]
    cat_weights = list(itertools.accumulate(w for _c, w in CATEGORY_MIX))
    author_pool = [f"{f} {la}" for f in FIRST_NAMES for la in LAST_NAMES]
    for n in range(count):
        base = samples[rng.randrange(len(samples))]
        theme = CONCEPTS[rng.choices(range(len(CONCEPTS)), cum_weights=theme_weights)[0]]
        theme_words = theme[0].strip('"')
        roll = rng.random()
        if roll < 0.45 and heads:
            sep, tail = rng.choice(tails)
            title = f"{rng.choice(heads)}{sep}{tail}"
        elif roll < 0.75:
            title = f"{base['title']}"
        else:
            head = rng.choice(heads) if heads else base["title"]
            title = f"{head}: {theme_words.title()} for {rng.choice(tails)[1] if tails else 'Everyone'}"
        if rng.random() < 0.35:
            title = f"{title} with {theme_words}"
        own = sentences[samples.index(base)]
        body = [own[0]]
        for _ in range(rng.randint(3, 7)):
            pool = sentences[rng.randrange(len(sentences))]
            body.append(pool[rng.randrange(len(pool))])
        body.insert(rng.randint(1, len(body)), f"We study {theme_words} in this setting.")
        abstract = " ".join(body)
        authors = rng.sample(author_pool, min(len(author_pool), max(1, int(rng.lognormvariate(1.6, 0.55)))))
        primary = rng.choices(cat_names, cum_weights=cat_weights)[0]
        cats = list(dict.fromkeys([primary, *rng.choices(cat_names, cum_weights=cat_weights, k=rng.randint(0, 2))]))
        pid = f"{now:%y%m}.{10000 + n:05d}"
        abs_url, pdf_url = arxiv_urls(pid)
        first_seen = now - timedelta(seconds=rng.randint(60, 6 * 3600))
        upvotes = None if rng.random() < 0.6 else int(rng.paretovariate(1.3)) - 1
        yield {
            "id": pid,
            "title": title,
            "authors": authors,
            "abstract": abstract,
            "categories": cats,
            "published": first_seen - timedelta(hours=rng.randint(6, 48)),
            "abs_url": abs_url,
            "pdf_url": pdf_url,
            "upvotes": upvotes,
            "sources": ["arxiv", "hf-daily-papers"] if upvotes is not None else ["arxiv"],
            "authoritative": True,
            "first_seen": first_seen,
            "updated_at": first_seen,
        }


def make_subscribers(rng: random.Random, count: int, queries: Sequence[str], now: datetime) -> Iterator[dict[str, Any]]:
    """`count` active, long-confirmed daily readers due at 00:00 UTC, 1–3 Zipf-drawn topics each."""
    cum = zipf_weights(len(queries))
    ranks = range(len(queries))
    for n in range(count):
        k = rng.choices((1, 2, 3), (50, 35, 15))[0]
        picked: dict[str, None] = {}
        while len(picked) < k:
            picked[queries[rng.choices(ranks, cum_weights=cum)[0]]] = None
        joined = now - timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86_399))
        first = rng.choice(FIRST_NAMES).lower().replace("ø", "o").replace("é", "e").replace("í", "i")
        first = first.encode("ascii", "ignore").decode()
        last = rng.choice(LAST_NAMES).lower().encode("ascii", "ignore").decode()
        roll = rng.random()
        yield {
            "email": f"{first}.{last}.{n}@{DOMAINS[n % len(DOMAINS)]}",
            "status": SubscriberStatus.ACTIVE,
            "topics": list(picked),
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
        for table in (Delivery, Notice, Suppression, Subscriber, Paper):
            conn.execute(delete(table.__table__))  # type: ignore[union-attr]


def reset_deliveries(engine: Engine) -> int:
    """Delete every delivery row, so the next run starts from the same state. Returns how many."""
    with engine.begin() as conn:
        result = conn.execute(delete(Delivery.__table__))  # type: ignore[attr-defined]
    return int(result.rowcount or 0)


def generate(engine: Engine, subscribers: int, papers: int, seed: int, now: datetime) -> Day:
    """Fill the database with the day: `papers` new papers and `subscribers` readers, in batches."""
    rng = random.Random(seed)
    authors = [f"{f} {la}" for f in FIRST_NAMES for la in LAST_NAMES]
    queries = make_queries(random.Random(seed + 1), authors)
    clear(engine)
    paper_table = Paper.__table__  # type: ignore[attr-defined]
    sub_table = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for batch in _batched(make_papers(random.Random(seed + 2), papers, now), BATCH):
            conn.execute(insert(paper_table), batch)
    with engine.begin() as conn:
        for batch in _batched(make_subscribers(rng, subscribers, queries, now), BATCH):
            conn.execute(insert(sub_table), batch)
    return Day(now=now, subscribers=subscribers, papers=papers, seed=seed, queries=queries)


def topic_stats(engine: Engine) -> dict[str, Any]:
    """How the topics are spread (distinct topics in use, share of the most common)."""
    from collections import Counter

    counts: Counter[str] = Counter()
    total = 0
    last = 0
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
            last = rows[-1][0]
        readers = conn.execute(sa_select(func.count()).select_from(sub)).scalar_one()
    top = counts.most_common(5)
    return {
        "readers": readers,
        "distinct_topics": len(counts),
        "topics_per_reader": round(total / max(1, readers), 2),
        "top_topics": [{"topic": t, "readers": c} for t, c in top],
    }
