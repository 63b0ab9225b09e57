"""Plain-text cleaning and word folding shared by parsing, the query language and matching."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser
from itertools import accumulate

_WS = re.compile(r"\s+")
RAW_SLACK = 8
# Letters and digits only: hyphens, dots and apostrophes split words, so "KV-cache" is "kv cache".
WORD = re.compile(r"[^\W_]+")
# WORD as one group (findall gives the words, split the separators and words in turn); on ASCII
# text the ASCII form, which finds them in half the time.
_WORD_CUTS = re.compile(r"([^\W_]+)")
_ASCII_WORD_CUTS = re.compile(r"([A-Za-z0-9]+)")
# An everyday address (letters, digits, ._%+- before the @; a dotted domain): a header or an SMTP
# command can carry it as it is, with no parsing (email.utils.parseaddr costs tens of µs).
PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_DROP_CONTENT = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCKS = frozenset({"p", "div", "li", "td", "th", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})
# C0 and C1 controls, line separators, and lone surrogates (a JSON feed can hold "\ud800"): none is
# text, and a surrogate cannot even be encoded to UTF-8 for the database or an email.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, dropping scripts, styles and all tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self._skip += 1
        elif tag in _BLOCKS or tag == "br":
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT and self._skip:
            self._skip -= 1
        elif tag in _BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def squash(text: str) -> str:
    """Collapse all whitespace (CR/LF included) to single spaces and drop control characters."""
    return _WS.sub(" ", _CONTROL.sub(" ", text)).strip()


# A complete tag holds no "<" or ">": scanning for one stops at the next "<", so finding every tag
# of a text is linear in its length (a `[^>]*` scan would run to the end of the text for every "<").
_TAG_OR_LT = re.compile(r"<[^<>]*>|<")


_COMMENT_OR_TAG = re.compile(r"<!--.*?-->|<[^<>]*>|<", re.S)
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")


def _safe_tag(tag: re.Match[str]) -> str:
    """A complete tag as HTMLParser may safely see it: a bare name. Attributes are dropped (cleaning
    keeps only text, and HTMLParser's attribute scan runs on past the ">" of a tag whose quotes it
    reads differently); comments, declarations, marked sections and processing instructions go
    (HTMLParser searches the rest of the text for the end of an unclosed one, again for each one,
    and raises AssertionError on marked sections it does not know); what is no tag is text."""
    text = tag.group()
    if len(text) == 1:
        return "&lt;"
    if text.startswith(("<!", "<?")):
        return ""
    name = _TAG_NAME.match(text)
    return f"<{name.group(1)}{name.group(2)}>" if name else "&lt;" + text[1:]


def _stray_lt_escaped(fragment: str) -> str:
    """The fragment as HTMLParser may read it in linear time: comments gone, every tag a bare name,
    and every "<" that does not open a complete tag written as `&lt;` (it rescans the rest of the
    text for each unfinished tag: quadratic on `<b<b<b…`). A comment runs to the first `-->` after
    it; where no `-->` follows, a `<!--` is only the start of a dropped tag, so that finding a
    comment's end never scans past the last close (which would be quadratic too)."""
    cut = fragment.rfind("-->") + 3 if "-->" in fragment else 0
    head = _COMMENT_OR_TAG.sub(_safe_tag, fragment[:cut]) if cut else ""
    return head + _TAG_OR_LT.sub(_safe_tag, fragment[cut:])


def bounded(raw: str, limit: int | None) -> str:
    """The part of a raw field worth cleaning for a result of at most `limit` characters: markup and
    entities take room, but never more than RAW_SLACK times the text they carry."""
    return raw if limit is None else raw[: limit * RAW_SLACK]


def html_to_text(fragment: str, limit: int | None = None) -> str:
    """Turn untrusted HTML (or text with entities) into one line of plain text, in time linear in
    its length whatever it holds; with `limit`, only the start that can make `limit` characters is read."""
    fragment = bounded(fragment, limit)
    if "<" not in fragment:
        return squash(unescape(fragment))
    extractor = _TextExtractor()
    extractor.feed(_stray_lt_escaped(fragment))
    extractor.close()
    return squash("".join(extractor.parts))


_KNOWN_TAG = re.compile(
    r"</?(?:script|style|iframe|frame|object|embed|applet|form|input|button|textarea|select|option|svg|math|img"
    r"|video|audio|source|a|b|i|u|s|em|strong|small|sub|sup|span|div|p|br|hr|ul|ol|li|dl|dt|dd|table|tr|td|th"
    r"|tbody|thead|h[1-6]|pre|code|blockquote|font|link|meta|base|body|html|head|title|mark|abbr|cite|q)\b[^<>]*>",
    re.I,
)
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#\d{1,7}|#x[0-9A-Fa-f]{1,6});")


def plain_text(value: str, limit: int | None = None) -> str:
    """Text a feed says is plain: strip real HTML tags and entities if present, keep `x<y` maths."""
    value = bounded(value, limit)
    if _KNOWN_TAG.search(value) or _ENTITY.search(value):
        return html_to_text(value)
    return squash(value)


def clip(text: str, limit: int) -> str:
    """Shorten text to at most `limit` characters, on a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def strip_accents(text: str) -> str:
    """Fold accents so "Pérez" matches "perez"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _strip_s(word: str) -> str:
    if len(word) >= 3 and word[-1] == "s" and word[-2:] not in ("ss", "us", "is"):
        return word[:-1]
    return word


def fold(word: str) -> str:
    """Fold a lowercase word so singular and plural meet: models→model, queries/query→queri,
    caches/cache→cach, biases/bias→bia. Crude on purpose: both sides of a match are folded alike."""
    word = _strip_s(word)
    if len(word) > 3 and word[-1] == "e":
        word = _strip_s(word[:-1])
    if len(word) > 3 and word[-1] == "y":
        word = word[:-1] + "i"
    return word


_ACRONYM_PLURAL = re.compile(r"^[A-Z0-9]{2,}s$")


@lru_cache(maxsize=500_000)
def normalize(word: str) -> str:
    """The key a word is indexed and searched under: lowercase, accent-free, plural-folded."""
    if _ACRONYM_PLURAL.match(word):  # GPUs, LLMs, VLMs: the plural of an acronym
        word = word[:-1]
    # A word of only marks that fold away (halfwidth ﾞ, ﾟ) keeps itself: an empty key matches nothing sane.
    return fold(strip_accents(word).casefold()) or word.casefold()


def _word_cuts(text: str) -> re.Pattern[str]:
    return _ASCII_WORD_CUTS if text.isascii() else _WORD_CUTS


def raw_words(text: str) -> list[str]:
    """The words of a text as written (WORD's matches), in order."""
    return _word_cuts(text).findall(text)


def words(text: str) -> list[str]:
    """The normalized words of a text, in order."""
    return list(map(normalize, raw_words(text)))


@lru_cache(maxsize=50_000)
def word_spans(text: str) -> tuple[tuple[int, int, str], ...]:
    """(start, end, normalized word) for each word, used to highlight matches in a snippet. The text
    is cut into separators and words (alternately, starting with a separator) and the offsets are
    the running sum of their lengths: every loop is in C."""
    pieces = _word_cuts(text).split(text)
    offsets = list(accumulate(map(len, pieces), initial=0))
    return tuple(zip(offsets[1:-1:2], offsets[2::2], map(normalize, pieces[1::2]), strict=True))
