"""The MIME builder: headers that cannot be injected, encodings that round-trip, and speed-friendly bytes."""

from __future__ import annotations

import binascii
import email
import quopri
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import mime
from digest.mime import HeaderError, Headers, build_message, domain_of, encode_words, make_message_id
from digest.render import RenderedDigest
from digest.text import PLAIN_ADDRESS

DATE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
LONG_URL = "https://digest.example.org/unsubscribe/" + "x" * 180


def _headers(**changes: object) -> Headers:
    values: dict[str, object] = {
        "sender": "Paper Digest <digest@example.org>",
        "recipient": "ada@example.org",
        "date": DATE,
        "message_id": "<digest.2026-11-30.abc@example.org>",
        "list_id": "Paper Digest <digest.example.org>",
        "unsubscribe_url": LONG_URL,
    }
    values.update(changes)
    return Headers(**values)  # type: ignore[arg-type]


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _digest(subject: str = "3 new papers on agents — 30 Nov") -> RenderedDigest:
    return RenderedDigest(subject, "<p>Zoë’s <b>papers</b></p>", "Zoë’s papers\n" + "long line " * 40)


def test_round_trip_of_headers_and_bodies() -> None:
    msg = _parse(build_message(_digest(), _headers()))
    assert msg["Subject"] == "3 new papers on agents — 30 Nov"
    assert msg["From"] == "Paper Digest <digest@example.org>"
    assert msg["List-Unsubscribe"] == f"<{LONG_URL}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert text == "Zoë’s papers\n" + "long line " * 40 + "\n"
    assert html == "<p>Zoë’s <b>papers</b></p>"


def test_every_line_is_crlf_and_short() -> None:
    data = build_message(_digest("x " * 200), _headers())
    lines = data.split(b"\r\n")
    assert b"\n" not in b"".join(lines)  # no bare LF anywhere
    assert max(len(line) for line in lines) <= 998
    assert all(line.isascii() for line in lines)


def test_long_url_header_is_never_encoded_or_split() -> None:
    data = build_message(_digest(), _headers())
    assert f"List-Unsubscribe: <{LONG_URL}>\r\n".encode() in data


@pytest.mark.parametrize(
    "evil",
    [
        "agents\r\nBcc: victim@example.org",
        "agents\nBcc: victim@example.org",
        "agents\rBcc: victim@example.org",
        "agents\u2028Bcc: victim@example.org",
    ],
)
def test_no_header_injection_through_the_subject(evil: str) -> None:
    data = build_message(_digest(evil), _headers())
    msg = _parse(data)
    assert msg["Bcc"] is None
    assert "Bcc: victim@example.org" in msg["Subject"]
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block


@pytest.mark.parametrize(
    "recipient",
    ["ada@example.org\r\nBcc: victim@example.org", "not an address", "", "zoë@exämple.org"],
)
def test_bad_recipients_are_refused(recipient: str) -> None:
    with pytest.raises(HeaderError):
        build_message(_digest(), _headers(recipient=recipient))


def test_display_names_are_quoted_or_encoded() -> None:
    msg = _parse(build_message(_digest(), _headers(sender='"Papers, Daily" <digest@example.org>')))
    assert msg["From"].addresses[0].display_name == "Papers, Daily"
    msg = _parse(build_message(_digest(), _headers(sender="Résumé Digest <digest@example.org>")))
    assert msg["From"].addresses[0].display_name == "Résumé Digest"
    assert msg["From"].addresses[0].addr_spec == "digest@example.org"


def test_encoded_words_are_at_most_75_characters() -> None:
    words = encode_words("Ünïcödé " * 40).split(" ")
    assert all(len(w) <= 75 for w in words)


def test_message_id_is_deterministic_per_reader_and_period() -> None:
    a = make_message_id("secret", 7, "2026-11-30", "example.org")
    assert a == make_message_id("secret", 7, "2026-11-30", "example.org")
    assert a != make_message_id("secret", 7, "2026-12-01", "example.org")
    assert a != make_message_id("secret", 8, "2026-11-30", "example.org")
    assert a.startswith("<digest.2026-11-30.") and a.endswith("@example.org>")
    assert "7" not in a.split(".")[-1].split("@")[0] or len(a) > 40  # the reader's id is not readable


def test_same_inputs_give_identical_bytes() -> None:
    assert build_message(_digest(), _headers()) == build_message(_digest(), _headers())


@pytest.mark.parametrize(
    ("address", "domain"),
    [("Paper Digest <digest@example.org>", "example.org"), ("a@b.c", "b.c"), ("nobody", "localhost")],
)
def test_domain_of(address: str, domain: str) -> None:
    assert domain_of(address) == domain


@pytest.mark.parametrize(
    ("html", "encoding"),
    [
        ('<p class="a" style="b:1">' + "word " * 400 + "</p>\n<p>x = y</p>", "quoted-printable"),
        ("<p>" + "x" * 5000 + "</p>", "quoted-printable"),  # one long line: soft breaks, never > 76
        ("<p>trailing spaces   \n\ttab\t</p>   ", "quoted-printable"),
        ("<p>Zoë’s cache cuts memory by 6x with no loss…</p>\n<p>▲ 42 · cs.CL</p>\n" * 20, "quoted-printable"),
        ("<p>▲ · …</p>", "base64"),  # so short and so little ASCII that base64 is smaller
        ("<p>" + "Кэширование ключей и значений " * 40 + "</p>", "base64"),  # mostly =XX as quoted-printable
        ("<p>" + "長い文脈の推論" * 200 + "</p>", "base64"),
    ],
)
def test_html_takes_the_smaller_encoding_and_decodes_to_the_same_html(html: str, encoding: str) -> None:
    data = build_message(RenderedDigest("Subject", html, "text\n"), _headers())
    part = _parse(data).get_body(("html",))
    assert part is not None and part["Content-Transfer-Encoding"] == encoding
    assert part.get_content().replace("\r\n", "\n") == html
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"\n" not in data.replace(b"\r\n", b"") and data.isascii()


QP_TEXTS = [
    "",
    "one line",
    "ends with a newline\n",
    "trailing spaces   \nand a tab\t\nthen = signs = 3\n",
    "é, ü and 日本語 on a line\r\nCRLF and\rCR breaks\n\n\nblank lines\n",
    "a long line " + "x" * 300 + " é" * 80 + "\nshort\n",
    '<p class="title"><a href="https://arxiv.org/abs/2406.12345">' + "word " * 40 + "</a></p>\n",
]


def _at_once(whole: str) -> bytes:
    """The CRLF text quoted-printable in one call, as mime.py did before it cached lines."""
    return binascii.b2a_qp(whole.encode() + b"\r\n", istext=True)[:-2]


@pytest.mark.parametrize("text", QP_TEXTS)
def test_quoted_printable_a_line_at_a_time_is_the_whole_text_encoded_at_once(text: str) -> None:
    whole = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    expected = _at_once(whole)
    assert mime.quoted_printable(text) == expected  # cold
    assert mime.quoted_printable(text) == expected  # every line from the cache
    assert quopri.decodestring(expected).decode() == whole


def test_the_line_cache_keeps_two_generations_and_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = mime._LineCache(3)
    monkeypatch.setattr(mime, "_QP_LINES", cache)
    shared = "<p>shared card line</p>\n"
    texts = [shared + f"vote link {i} =\n" * 2 for i in range(6)]
    for text in texts:
        assert mime.quoted_printable(text) == _at_once(text.replace("\n", "\r\n"))
        assert len(cache.new) <= 3 and len(cache.old) <= 3
    assert "<p>shared card line</p>" in {**cache.old, **cache.new}  # used by every message, kept
    assert "vote link 0 =" not in {**cache.old, **cache.new}  # one message's line, gone


_QP_CHARS = st.sampled_from(["a", "b", " ", "\t", "=", "é", "日", "\n", "\n", "\r", "<p>", "x" * 40])


@st.composite
def _text_and_pieces(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A text and pieces of it in order (some cut mid-line, some not in it at all)."""
    text = "".join(draw(st.lists(_QP_CHARS, max_size=60)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=False)]
    if draw(st.booleans()):
        pieces.insert(draw(st.integers(0, len(pieces))), "not in the text\n")
    return text, pieces


@given(_text_and_pieces())
@settings(max_examples=400, deadline=None)
def test_shared_pieces_encode_to_the_bytes_of_the_whole_text(case: tuple[str, list[str]]) -> None:
    text, pieces = case
    expected = _at_once(text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n"))
    assert mime.quoted_printable(text, pieces) == expected  # first time: each piece's lines encoded
    assert mime.quoted_printable(text, pieces) == expected  # then each piece's run from the cache


def test_a_digests_cards_are_encoded_once_and_give_the_same_message() -> None:
    card = '<div class="card">\n<p class="title">Long context é</p>\n<p class="snippet">' + "word " * 30 + "=</p>"
    text = "1. Long context é\n   " + "word " * 14 + "\n   cs.CL\n"
    rendered = RenderedDigest(
        "Subject",
        f"<body>\n{card}\n<p>vote 1</p>\n{card}\n<p>vote 2</p>\n</body>",
        f"1. {text}\n2. {text}",
        (card, card),
        (text, text),
    )
    plain = RenderedDigest(rendered.subject, rendered.html, rendered.text)
    assert build_message(rendered, _headers()) == build_message(plain, _headers())
    assert (card, 0, len(card)) in {**mime._QP_LINES.old, **mime._QP_LINES.new}  # the card's run, kept whole


@given(st.from_regex(PLAIN_ADDRESS, fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_a_plain_address_is_taken_as_parsing_it_would_give(address: str) -> None:
    try:
        parsed = mime._parsed_address.__wrapped__(address)
    except HeaderError:
        parsed = "refused"
    assert mime._address(address) == parsed == address
