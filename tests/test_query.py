"""Tables for the topic query language: what valid topics parse to, and where invalid ones fail."""

from __future__ import annotations

import pytest

from digest.query import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    And,
    Category,
    Like,
    Node,
    Not,
    Or,
    QueryError,
    Term,
    describe_error,
    parse_query,
    positive_terms,
)


def t(text: str, *folded: str, field: str = "text") -> Term:
    """A term as the parser builds it; `folded` defaults to the text itself (for plain words)."""
    return Term(field, folded or (text,), text)  # type: ignore[arg-type]


VALID: list[tuple[str, Node]] = [
    ("diffusion", t("diffusion")),
    ("  diffusion  ", t("diffusion")),
    ("Models", t("Models", "model")),
    ("LLMs", t("LLMs", "llm")),
    ("queries", t("queries", "queri")),
    ("Pérez", t("Pérez", "perez")),
    ('"large language models"', t("large language models", "larg", "languag", "model")),
    # Hyphenated words are phrases of their parts.
    ("KV-cache", t("KV-cache", "kv", "cach")),
    ("state-of-the-art", t("state-of-the-art", "stat", "of", "the", "art")),
    # Implicit AND.
    ("speculative decoding", And((t("speculative", "speculativ"), t("decoding")))),
    ("a AND b", And((t("a"), t("b")))),
    ("a b c", And((t("a"), t("b"), t("c")))),
    ("a OR b", Or((t("a"), t("b")))),
    ("a OR b OR c", Or((t("a"), t("b"), t("c")))),
    # Lower-case and/or/not are ordinary words.
    ("a or b", And((t("a"), t("or"), t("b")))),
    # Precedence: NOT binds tighter than AND, AND tighter than OR.
    ("a b OR c", Or((And((t("a"), t("b"))), t("c")))),
    ("a OR b c", Or((t("a"), And((t("b"), t("c")))))),
    ("a AND b OR c AND d", Or((And((t("a"), t("b"))), And((t("c"), t("d")))))),
    ("NOT a b", And((Not(t("a")), t("b")))),
    ("a AND NOT b", And((t("a"), Not(t("b"))))),
    ("a OR NOT b c", Or((t("a"), And((Not(t("b")), t("c")))))),
    ("a -b", And((t("a"), Not(t("b"))))),
    ("-b a", And((Not(t("b")), t("a")))),
    ('rag -"systematic review"', And((t("rag"), Not(t("systematic review", "systematic", "review"))))),
    ("a -KV-cache", And((t("a"), Not(t("KV-cache", "kv", "cach"))))),
    # Parentheses override precedence.
    ("(a OR b) c", And((Or((t("a"), t("b"))), t("c")))),
    ("a (b OR c)", And((t("a"), Or((t("b"), t("c")))))),
    ("a -(b OR c)", And((t("a"), Not(Or((t("b"), t("c"))))))),
    ("((a))", t("a")),
    ("A AND (B OR C) NOT D", And((t("A", "a"), Or((t("B", "b"), t("C", "c"))), Not(t("D", "d"))))),
    # Field prefixes.
    ("title:diffusion", t("diffusion", field="title")),
    ("TITLE:diffusion", t("diffusion", field="title")),
    ("abstract:benchmark", t("benchmark", field="abstract")),
    ("author:LeCun", t("LeCun", "lecun", field="author")),
    ('author:"Yann LeCun"', t("Yann LeCun", "yann", "lecun", field="author")),
    ("title:KV-cache", t("KV-cache", "kv", "cach", field="title")),
    ("title:foo bar", And((t("foo", field="title"), t("bar")))),
    ("title:(a OR b)", Or((t("a", field="title"), t("b", field="title")))),
    ("title:(a -b)", And((t("a", field="title"), Not(t("b", field="title"))))),
    ("x -title:survey", And((t("x"), Not(t("survey", "survei", field="title"))))),
    # Categories.
    ("cat:cs.CL", Category("cs.cl", "cs.CL")),
    ("cat:CS.cl", Category("cs.cl", "CS.cl")),
    ("cat:cs.*", Category("cs.*", "cs.*")),
    ("cat:math", Category("math", "math")),
    ('cat:"cs.LG"', Category("cs.lg", "cs.LG")),
    ("cat:(cs.CL OR cs.LG)", Or((Category("cs.cl", "cs.CL"), Category("cs.lg", "cs.LG")))),
    ("rag cat:cs.*", And((t("rag"), Category("cs.*", "cs.*")))),
    ("rag -cat:cs.CV", And((t("rag"), Not(Category("cs.cv", "cs.CV"))))),
    # Semantic terms: like a text, like an example paper; they combine with the operators.
    ('like:"context window extension"', Like("text", "context window extension", '"context window extension"')),
    ('like:"  two   spaces "', Like("text", "two spaces", '"  two   spaces "')),
    ("like:2406.12345", Like("paper", "2406.12345", "2406.12345")),
    ("LIKE:arXiv:2406.12345v3", Like("paper", "2406.12345", "arXiv:2406.12345v3")),
    ("like:hep-th/9901001", Like("paper", "hep-th/9901001", "hep-th/9901001")),
    ("like:2406.12345 -survey", And((Like("paper", "2406.12345", "2406.12345"), Not(t("survey", "survei"))))),
    (
        'like:2406.12345 OR "long context"',
        Or((Like("paper", "2406.12345", "2406.12345"), t("long context", "long", "context"))),
    ),
    ("agents -like:2401.00001", And((t("agents", "agent"), Not(Like("paper", "2401.00001", "2401.00001"))))),
    ("title:like:x", t("like:x", "lik", "x", field="title")),  # a word that merely contains "like:"
    # Numbers are words too.
    ("GPT-4", t("GPT-4", "gpt", "4")),
    ("3:4", t("3:4", "3", "4")),
]


@pytest.mark.parametrize(("query", "tree"), VALID, ids=[q for q, _ in VALID])
def test_parse_valid(query: str, tree: Node) -> None:
    assert parse_query(query) == tree


TOO_LONG = "a" * (MAX_QUERY_CHARS + 1)
TOO_MANY = " ".join(f"w{n}" for n in range(MAX_TERMS + 1))
# Column of the first term past the limit: each earlier term "wN" plus its space.
TOO_MANY_COLUMN = len(" ".join(f"w{n}" for n in range(MAX_TERMS))) + 2

INVALID: list[tuple[str, int, str]] = [
    ("", 1, "empty"),
    ("   ", 1, "empty"),
    ('rag "kv cache', 5, "quote is never closed"),
    ('"', 1, "quote is never closed"),
    ("a)", 2, "')' has no matching '('"),
    (")", 1, "')' has no matching '('"),
    ("(a OR b) c)", 11, "')' has no matching '('"),
    ("(a OR b", 1, "'(' is never closed"),
    ("x (a (b)", 3, "'(' is never closed"),
    ("(", 2, "ends where a term was expected"),
    ("()", 1, "empty parentheses"),
    ("a () b", 3, "empty parentheses"),
    ("a AND", 3, "AND needs a term after it"),
    ("a OR", 3, "OR needs a term after it"),
    ("a NOT", 3, "NOT needs a term after it"),
    ("a AND OR b", 3, "AND needs a term after it"),
    ("a OR ) b", 3, "OR needs a term after it"),
    ("(a AND)", 4, "AND needs a term after it"),
    ("(a -)", 4, "- needs a term after it"),
    ("AND a", 1, "AND needs a term before it"),
    ("OR a", 1, "OR needs a term before it"),
    ("(OR a)", 2, "OR needs a term before it"),
    ("NOT", 1, "NOT needs a term after it"),
    ("a NOT OR b", 3, "NOT needs a term after it"),
    ("foo:bar", 1, "unknown field 'foo:'"),
    ("rag foo:bar", 5, "unknown field 'foo:'"),
    ("Foo:bar", 1, "use one of title:, abstract:, author:, cat:, like:"),
    ("title:", 1, "'title:' needs a word"),
    ("rag title:", 5, "'title:' needs a word"),
    ("title: OR x", 1, "'title:' needs a word"),
    ("cat:???", 5, "'???' is not an arXiv category"),
    ("x cat:cs..CL", 7, "not an arXiv category"),
    ("cat:cs.", 5, "not an arXiv category"),
    ('""', 1, "empty phrase has no letters or digits"),
    ("a ...", 3, "'...' has no letters or digits"),
    ("-", 1, "'-' has no letters or digits"),
    ("-survey", 1, "not only exclusions"),
    ("NOT x", 1, "not only exclusions"),
    ('-"systematic review" -survey', 1, "not only exclusions"),
    ("-(a OR b)", 1, "not only exclusions"),
    (TOO_LONG, MAX_QUERY_CHARS + 1, f"too long (at most {MAX_QUERY_CHARS} characters)"),
    (TOO_MANY, TOO_MANY_COLUMN, f"too many terms (at most {MAX_TERMS})"),
    ("like:", 1, "'like:' needs a \"text\" or an arXiv id like 2406.12345"),
    ("rag like:", 5, "'like:' needs a \"text\""),
    ("like:agents", 6, "'agents' is not an arXiv id like 2406.12345; to describe papers, quote the text: like:\"…\""),
    ("like:2406.123", 6, "'2406.123' is not an arXiv id"),
    ("like:(a OR b)", 1, 'like: takes one "text" or one arXiv id, not a group or another field'),
    ('like:""', 6, "empty phrase has no letters or digits"),
    ("-like:2406.12345", 1, "not only exclusions"),
    (" ".join(f"like:2406.1234{n}" for n in range(6)), 81, "too many like: terms (at most 5 per topic)"),
    ("rag\ndiffusion", 4, "one line"),
    ("rag\r\ndiffusion", 4, "one line"),
    ("rag diffusion\n", 14, "one line"),
]


@pytest.mark.parametrize(("query", "column", "reason"), INVALID, ids=[repr(q[:30]) for q, _, _ in INVALID])
def test_parse_invalid(query: str, column: int, reason: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.column == column
    assert reason in info.value.reason
    assert info.value.query == query
    assert str(info.value) == f"column {column}: {info.value.reason}"


def test_limits_are_inclusive() -> None:
    longest = "a" * MAX_QUERY_CHARS
    assert parse_query(longest) == t(longest)
    most = " ".join(f"w{n}" for n in range(MAX_TERMS))
    assert parse_query(most) == And(tuple(t(f"w{n}") for n in range(MAX_TERMS)))


@pytest.mark.parametrize(
    "query",
    [
        "title:-survey",
        "title: -survey",
        "diffusion title:-survey",
    ],
)
def test_minus_after_a_field_is_never_silently_dropped(query: str) -> None:
    """`title:-survey` must exclude surveys (or be refused), never look only for surveys."""
    try:
        tree = parse_query(query)
    except QueryError:
        return
    assert all(term.words != ("survei",) for term in positive_terms(tree))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "rag foo:bar",
            "rag foo:bar\n    ^ unknown field 'foo:'; use one of title:, abstract:, author:, cat:, like:",
        ),
        ("a AND", "a AND\n  ^ AND needs a term after it"),
        ('"open', '"open\n^ this quote is never closed; add a closing "'),
        ("(", "(\n ^ the topic ends where a term was expected"),
        ("cat:???", "cat:???\n    ^ '???' is not an arXiv category like cs.CL or cs.*"),
    ],
)
def test_describe_error_points_at_the_column(query: str, expected: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert describe_error(info.value) == expected


@pytest.mark.parametrize(("query", "column", "reason"), INVALID[:35], ids=[repr(q[:30]) for q, _, _ in INVALID[:35]])
def test_describe_error_caret_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    first, second = describe_error(info.value).split("\n", 1)
    assert first == query
    assert second.index("^") == column - 1
    assert second.endswith(info.value.reason)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a b -c", [t("a"), t("b")]),
        ("a OR (b NOT c)", [t("a"), t("b")]),
        ("title:x cat:cs.CL", [t("x", field="title")]),
        ("-(a b) c", [t("c")]),
    ],
)
def test_positive_terms(query: str, expected: list[Term]) -> None:
    assert positive_terms(parse_query(query)) == expected


@pytest.mark.parametrize(
    ("pattern", "category", "expected"),
    [
        ("cs.cl", "cs.CL", True),
        ("cs.cl", "cs.CLX", False),
        ("cs.cl", "cs.LG", False),
        ("cs.*", "cs.CV", True),
        ("cs.*", "CS.ai", True),
        ("cs.*", "math.CO", False),
        ("cs.*", "csx", False),
        ("*", "q-bio.NC", True),
    ],
)
def test_category_matches(pattern: str, category: str, expected: bool) -> None:
    assert Category(pattern).matches(category) is expected


def test_double_negation_is_a_positive_query() -> None:
    assert parse_query("NOT NOT agents") == Not(Not(Term("text", ("agent",), "agents")))


def test_minus_after_a_spaced_field_points_at_the_fix() -> None:
    with pytest.raises(QueryError) as info:
        parse_query("diffusion title: -survey")
    assert info.value.column == 18
    assert "-title:survey" in info.value.reason
