"""The topic query language: words, "phrases", AND/OR/NOT, -word, parentheses and field prefixes.

`parse_query` turns a topic into a tree of `Term`, `Category`, `And`, `Or` and `Not` nodes, or
raises `QueryError` saying where (1-based column) and why. Matching lives in `digest.match`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from digest.text import words

MAX_QUERY_CHARS = 300
MAX_TERMS = 40
# Parentheses and NOTs nest by recursion: bounded well below Python's stack, whatever the 300 characters hold.
MAX_DEPTH = 40
FIELDS = ("title", "abstract", "author", "cat", "like")
MAX_LIKES = 5  # semantic terms per topic: each text is embedded once per matching pass
Field = Literal["text", "title", "abstract", "author"]
_PAPER_ID = re.compile(r"^(?:arXiv:)?(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.I)
_CATEGORY = re.compile(r"^[A-Za-z][A-Za-z0-9\-]*(\.[A-Za-z0-9\-]+)?(\.?\*)?$|^\*$")


class QueryError(ValueError):
    """A topic that does not parse; `column` is 1-based."""

    def __init__(self, query: str, position: int, reason: str) -> None:
        self.query = query
        self.column = position + 1
        self.reason = reason
        super().__init__(f"column {self.column}: {reason}")


@dataclass(frozen=True)
class Term:
    """Words that must appear consecutively (one word is a phrase of length one) in a field."""

    field: Field
    words: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Category:
    """An arXiv category, exact (`cs.CL`) or a prefix (`cs.*`); `pattern` is casefolded."""

    pattern: str
    text: str = ""

    def matches(self, category: str) -> bool:
        """Case-insensitive exact or prefix match."""
        cat = category.casefold()
        if self.pattern.endswith("*"):
            return cat.startswith(self.pattern[:-1])
        return cat == self.pattern


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Like:
    """Papers close in meaning to a text (`like:"context window extension"`) or to an example
    paper (`like:2406.12345`), by cosine similarity of their embeddings."""

    kind: Literal["text", "paper"]
    value: str  # the text, or the arXiv id without version
    text: str  # as written


Node = Term | Category | Like | Not | And | Or


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "phrase", "field", "(", ")", "-", "AND", "OR", "NOT"]
    text: str
    pos: int


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, ch, i))  # type: ignore[arg-type]
            i += 1
        elif ch == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError(query, i, 'this quote is never closed; add a closing "')
            tokens.append(_Token("phrase", query[i + 1 : end], i))
            i = end + 1
        elif ch == "-" and i + 1 < n and not query[i + 1].isspace() and _starts_term(tokens):
            tokens.append(_Token("-", "-", i))
            i += 1
        else:
            i = _lex_word(query, i, tokens)
    return tokens


def _starts_term(tokens: list[_Token]) -> bool:
    return not tokens or tokens[-1].kind not in ("field",)


def _lex_word(query: str, start: int, tokens: list[_Token]) -> int:
    end = start
    while end < len(query) and not query[end].isspace() and query[end] not in '()"':
        end += 1
    text = query[start:end]
    name, colon, rest = text.partition(":")
    if colon and name.isalpha():
        if name.casefold() not in FIELDS:
            known = ", ".join(f"{f}:" for f in FIELDS)
            raise QueryError(query, start, f"unknown field '{name}:'; use one of {known}")
        if rest.startswith("-") and len(rest) > 1:  # title:-survey means -title:survey
            tokens.append(_Token("-", "-", start + len(name) + 1))
            rest = rest[1:]
        tokens.append(_Token("field", name.casefold(), start))
        if rest:
            tokens.append(_Token("word", rest, end - len(rest)))
        return end
    if text in ("AND", "OR", "NOT"):
        tokens.append(_Token(text, text, start))  # type: ignore[arg-type]
    else:
        tokens.append(_Token("word", text, start))
    return end


class _Parser:
    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.i = 0
        self.terms = 0
        self.likes = 0
        self.depth = 0

    def error(self, pos: int, reason: str) -> QueryError:
        return QueryError(self.query, pos, reason)

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def deeper(self, token: _Token) -> None:
        """One more level of parentheses or NOT; refuse a topic nested deeper than MAX_DEPTH."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token.pos, f"nested too deeply (at most {MAX_DEPTH} levels of parentheses and NOT)")

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        node = self.parse_or("text")
        token = self.peek()
        if token is not None:
            raise self.error(token.pos, "this ')' has no matching '('")
        return node

    def parse_or(self, field: str) -> Node:
        children = [self.parse_and(field)]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            self.expect_operand(token)
            children.append(self.parse_and(field))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self, field: str) -> Node:
        children = [self.parse_unary(field)]
        while (token := self.peek()) is not None and token.kind not in ("OR", ")"):
            if token.kind == "AND":
                self.take()
                self.expect_operand(token)
            children.append(self.parse_unary(field))
        return children[0] if len(children) == 1 else And(tuple(children))

    def expect_operand(self, op: _Token) -> None:
        token = self.peek()
        if token is None or token.kind in ("AND", "OR", ")"):
            raise self.error(op.pos, f"{op.text} needs a term after it")

    def parse_unary(self, field: str) -> Node:
        token = self.peek()
        if token is None:
            raise self.error(len(self.query), "the topic ends where a term was expected")
        if token.kind in ("NOT", "-"):
            self.take()
            if self.peek() is None or self.peek().kind in ("AND", "OR", ")"):  # type: ignore[union-attr]
                raise self.error(token.pos, f"{token.text} needs a term after it")
            self.deeper(token)
            node = Not(self.parse_unary(field))
            self.depth -= 1
            return node
        if token.kind in ("AND", "OR"):
            raise self.error(token.pos, f"{token.text} needs a term before it")
        return self.parse_primary(field)

    def parse_primary(self, field: str) -> Node:
        token = self.take()
        if token.kind == "field":
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("word", "phrase", "("):
                if token.text == "like":
                    raise self.error(token.pos, "'like:' needs a \"text\" or an arXiv id like 2406.12345")
                raise self.error(token.pos, f"'{token.text}:' needs a word, \"phrase\" or (group)")
            if nxt.kind == "word" and nxt.text.startswith("-"):
                raise self.error(nxt.pos, f"to exclude, put the minus before the field: -{token.text}:{nxt.text[1:]}")
            if token.text == "like" or field == "like":
                return self.make_like(token, nxt)
            return self.parse_primary(token.text)
        if token.kind == "(":
            if (nxt := self.peek()) is not None and nxt.kind == ")":
                raise self.error(token.pos, "empty parentheses")
            self.deeper(token)
            node = self.parse_or(field)
            close = self.peek()
            if close is None or close.kind != ")":
                raise self.error(token.pos, "this '(' is never closed")
            self.take()
            self.depth -= 1
            return node
        if token.kind == ")":
            raise self.error(token.pos, "this ')' has no matching '('")
        return self.make_term(token, field)

    def make_like(self, field: _Token, token: _Token) -> Node:
        """`like:"some text"` or `like:2406.12345`."""
        if field.text != "like" or token.kind == "(":
            raise self.error(field.pos, 'like: takes one "text" or one arXiv id, not a group or another field')
        self.take()
        self.likes += 1
        if self.likes > MAX_LIKES:
            raise self.error(field.pos, f"too many like: terms (at most {MAX_LIKES} per topic)")
        self.make_term(token, "text")  # counts toward the term limit; words are checked as for any term
        if token.kind == "phrase":
            return Like("text", " ".join(token.text.split()), f'"{token.text}"')
        found = _PAPER_ID.match(token.text)
        if found is None:
            hint = 'to describe papers, quote the text: like:"…"'
            raise self.error(token.pos, f"'{token.text}' is not an arXiv id like 2406.12345; {hint}")
        return Like("paper", found.group(1), token.text)

    def make_term(self, token: _Token, field: str) -> Node:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(token.pos, f"too many terms (at most {MAX_TERMS})")
        if field == "cat":
            pattern = token.text.strip().casefold()
            if not _CATEGORY.match(pattern):
                raise self.error(token.pos, f"'{token.text}' is not an arXiv category like cs.CL or cs.*")
            return Category(pattern, token.text.strip())
        found = tuple(words(token.text))
        if not found:
            what = "empty phrase" if token.kind == "phrase" else f"'{token.text}'"
            raise self.error(token.pos, f"{what} has no letters or digits to search for")
        return Term(field, found, token.text)  # type: ignore[arg-type]


def _has_positive(node: Node, negated: bool = False) -> bool:
    if isinstance(node, Term | Category | Like):
        return not negated
    if isinstance(node, Not):
        return _has_positive(node.child, not negated)
    return any(_has_positive(child, negated) for child in node.children)


@lru_cache(maxsize=65_536)
def parse_query(query: str) -> Node:
    """Parse one topic; raise QueryError with the column and reason when it is not valid. The
    trees are immutable, so each topic is parsed once per process (every chunk meets it again)."""
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(query, MAX_QUERY_CHARS, f"the topic is too long (at most {MAX_QUERY_CHARS} characters)")
    if "\n" in query or "\r" in query:
        raise QueryError(query, min(query.find(c) for c in "\r\n" if c in query), "a topic is one line")
    if not query.strip():
        raise QueryError(query, 0, "the topic is empty")
    node = _Parser(query, _lex(query)).parse()
    if not _has_positive(node):
        raise QueryError(query, 0, "a topic needs at least one word to look for, not only exclusions")
    return node


def positive_terms(node: Node) -> list[Term]:
    """The terms a match is made of (not under NOT), used for ranking and highlighting."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Category | Like | Not):
        return []
    return [term for child in node.children for term in positive_terms(child)]


def positive_likes(node: Node) -> list[Like]:
    """The semantic terms a match can be made of (not under NOT)."""
    if isinstance(node, Like):
        return [node]
    if isinstance(node, Term | Category | Not):
        return []
    return [like for child in node.children for like in positive_likes(child)]


def label(node: Node, chosen: Callable[[Or], Node] | None = None, like: Callable[[Like], str] | None = None) -> str:
    """A short human name for a topic's tree: its positive words, NOTs left out; an OR names one
    alternative — the one `chosen` picks (the one that matched a paper), else its first; a `like:`
    term is named by `like` (e.g. with the example's title), else by what was written."""
    if isinstance(node, Term):
        return node.text.strip('"')
    if isinstance(node, Like):
        return like(node) if like else f"like {node.text}"
    if isinstance(node, Category):
        return node.text or node.pattern
    if isinstance(node, Not):
        return ""
    if isinstance(node, Or):
        return label(chosen(node) if chosen else node.children[0], chosen, like)
    return " ".join(part for part in (label(c, chosen, like) for c in node.children) if part)


def describe_error(error: QueryError) -> str:
    """Two lines: the topic, and a caret under the column, followed by the reason."""
    caret = " " * (error.column - 1) + "^"
    return f"{error.query}\n{caret} {error.reason}"
