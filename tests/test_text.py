"""Tables for the plain-text helpers: HTML cleaning, clipping, and word folding."""

from __future__ import annotations

import pytest

from digest import text
from digest.text import clip, fold, html_to_text, normalize, plain_text, squash, strip_accents, word_spans, words


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("plain text", "plain text"),
        ("<b>bold</b> and <i>italic</i>", "bold and italic"),
        ('<a href="https://x.org/?a=1&amp;b=2">link</a> text', "link text"),
        ("<script>alert('x')</script>after", "after"),
        ("<SCRIPT>bad()</SCRIPT>ok", "ok"),
        ("<style>p { color: red }</style>styled", "styled"),
        ("before<noscript>hidden</noscript> after", "before after"),
        ("<head><title>Page</title></head><body>body</body>", "body"),
        ("a &amp; b", "a & b"),
        ("a &amp; b <b>c</b>", "a & b c"),
        ("&lt;not a tag&gt;", "<not a tag>"),
        ("caf&eacute; &#233;t&#xE9;", "café été"),
        ("a&nbsp;b", "a b"),
        ("line one\r\nline two\rline three\nline four", "line one line two line three line four"),
        ("  lots   of\t\tspace  ", "lots of space"),
        ("<p>one</p><p>two</p>", "one two"),
        ("one<br>two<br/>three", "one two three"),
        ("<ul><li>a</li><li>b</li></ul>", "a b"),
        ("x <!-- a comment --> y", "x y"),
        ("x < y and y > z", "x < y and y > z"),
        ("nul\x00char", "nul char"),
        ("", ""),
        ("<p>   </p>", ""),
    ],
)
def test_html_to_text(fragment: str, expected: str) -> None:
    assert html_to_text(fragment) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\n\r\nb", "a b"),
        ("\ta  b\n", "a b"),
        ("a\x07b", "a b"),
        ("a\u2028b", "a b"),
        ("", ""),
    ],
)
def test_squash(text: str, expected: str) -> None:
    assert squash(text) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("the quick brown fox", 12, "the quick…"),
        ("the quick brown fox jumps", 20, "the quick brown…"),
        # Punctuation left dangling before the ellipsis is dropped.
        ("one two, three four", 10, "one two…"),
        ("one two. three four", 10, "one two…"),
        # No space in the second half: cut mid-word rather than losing most of the text.
        ("abcdefghijklmnop", 8, "abcdefg…"),
        ("hello world foo", 10, "hello wor…"),
    ],
)
def test_clip(text: str, limit: int, expected: str) -> None:
    result = clip(text, limit)
    assert result == expected
    assert len(result) <= limit


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("models", "model"),
        ("model", "model"),
        ("queries", "queri"),
        ("query", "queri"),
        ("caches", "cach"),
        ("cache", "cach"),
        ("LLMs", "llm"),
        ("LLM", "llm"),
        ("Transformers", "transformer"),
        ("studies", "studi"),
        ("study", "studi"),
        ("boxes", "box"),
        # Words whose -s is not a plural are left alone.
        ("class", "class"),
        ("corpus", "corpus"),
        ("analysis", "analysis"),
        ("is", "is"),
        ("as", "as"),
        # Too short to fold further.
        ("use", "use"),
        ("a", "a"),
        ("Pérez", "perez"),
        ("naïve", "naiv"),
        ("ÉCOLE", "ecol"),
        ("Straße", "strass"),
    ],
)
def test_normalize(word: str, expected: str) -> None:
    assert normalize(word) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("models", "model"),
        ("queries", "queri"),
        ("caches", "cach"),
        ("class", "class"),
        ("bus", "bus"),
        ("its", "it"),
        ("ab", "ab"),
    ],
)
def test_fold(word: str, expected: str) -> None:
    assert fold(word) == expected


@pytest.mark.parametrize(
    ("singular", "plural"),
    [
        ("model", "models"),
        ("query", "queries"),
        ("cache", "caches"),
        ("LLM", "LLMs"),
        ("box", "boxes"),
        ("process", "processes"),
        ("bus", "buses"),
        ("embedding", "embeddings"),
        ("architecture", "architectures"),
        # A singular ending in -s and its -es plural must meet too.
        ("bias", "biases"),
        # An upper-case acronym pluralised with a lower-case -s, like LLMs.
        ("GPU", "GPUs"),
    ],
)
def test_singular_and_plural_meet(singular: str, plural: str) -> None:
    assert normalize(singular) == normalize(plural)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pérez-García", "Perez-Garcia"),
        ("naïve café", "naive cafe"),
        ("plain", "plain"),
    ],
)
def test_strip_accents(text: str, expected: str) -> None:
    assert strip_accents(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("KV-cache", ["kv", "cach"]),
        ("Efficient KV-Caches for LLMs", ["efficient", "kv", "cach", "for", "llm"]),
        ("don't stop", ["don", "t", "stop"]),
        ("snake_case words", ["snak", "ca", "word"]),
        ("GPT-4.5 (2025)", ["gpt", "4", "5", "2025"]),
        ("  ", []),
        ("--- ... !!!", []),
        ("Pérez", ["perez"]),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_word_spans_point_at_the_original_text() -> None:
    text = "Fast KV-caches"
    spans = word_spans(text)
    assert spans == ((0, 4, "fast"), (5, 7, "kv"), (8, 14, "cach"))
    assert [text[s:e] for s, e, _ in spans] == ["Fast", "KV", "caches"]


@pytest.mark.parametrize(
    ("html", "text"),
    [("<p>a</p>b", "a b"), ("<td>a</td><td>b</td>", "a b"), ("x<br>y", "x y"), ("<h2>T</h2>body", "T body")],
)
def test_block_boundaries_become_spaces(html: str, text: str) -> None:
    assert html_to_text(html) == text


HOSTILE = ["<b", "<a ", "<!--", "</", "<?", "<![CDATA[", "<b x='", "<<>", "<p>x</p", "<script>"]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_every_lt_left_for_the_html_parser_opens_a_complete_tag(pattern: str) -> None:
    """What makes cleaning linear: Python's HTMLParser rescans the rest of the text for each
    unfinished tag, so none reaches it (and finding the tags stops at the next "<" each time)."""
    escaped = text._stray_lt_escaped(pattern * 50_000)
    starts = [i for i, ch in enumerate(escaped) if ch == "<"]
    assert all(text._TAG_OR_LT.match(escaped, i).group().endswith(">") for i in starts)  # type: ignore[union-attr]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_a_multi_megabyte_field_is_read_only_as_far_as_its_limit(pattern: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    feed = text._TextExtractor.feed

    def spy(self: text._TextExtractor, data: str) -> None:
        seen.append(len(data))
        feed(self, data)

    monkeypatch.setattr(text._TextExtractor, "feed", spy)
    hostile = pattern * (3_000_000 // len(pattern))
    cleaned = html_to_text(hostile + "<b>tail</b>", limit=10_000)
    assert "tail" not in cleaned
    # At most the bounded prefix reaches the parser (each stray "<" written as "&lt;" is 4 characters).
    assert seen and max(seen) <= 4 * 10_000 * text.RAW_SLACK


def test_plain_text_reads_only_as_far_as_its_limit() -> None:
    assert plain_text("x" * 5_000_000, limit=100) == "x" * 100 * text.RAW_SLACK
