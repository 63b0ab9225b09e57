"""DKIM signing: real digests from `build_message`, signed with a key made here, verified by dkimpy
against a stub DNS answer, after the changes relays make and after the changes attackers make."""

from __future__ import annotations

import base64
import email
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.util import parse_tag_value
from pydantic import ValidationError
from sqlmodel import Session

from digest.config import Settings, parse_smtp_url
from digest.dkim import SIGNED_HEADERS, DkimError, DkimKey, load_key, sign
from digest.mime import Headers, build_message
from digest.pipeline import run_send
from digest.render import RenderedDigest
from digest.send import OutboxTransport, Outcome, Outgoing, Result, SmtpTransport
from tests.conftest import GOLDEN
from tests.factories import add_papers, paper, subscriber
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401

DOMAIN = "example.org"
SELECTOR = "digest2026"
DNS_NAME = f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
DATE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
UNSUBSCRIBE_200 = "https://digest.example.org/unsubscribe/" + "Ab3_-" * 32 + "x"  # 200 characters
LONG_SUBJECT = (
    "25 new papers on Zoë’s «long context», KV cache, retrieval-augmented generation, "
    "mixture of experts, 検索拡張生成 and diffusion transformers — 30 Nov"
)
Dns = Callable[..., bytes | None]

# --- keys and DNS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(private: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _txt_record(private: rsa.RSAPrivateKey) -> bytes:
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def dns_stub(records: dict[bytes, bytes], asked: list[bytes] | None = None) -> Dns:
    """dkimpy's `dnsfunc`: answers from a dict, like a resolver that knows only these names."""

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        if asked is not None:
            asked.append(name)
        return records.get(name)

    return lookup


@pytest.fixture(scope="module")
def key(rsa_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> DkimKey:
    path = tmp_path_factory.mktemp("dkim") / "digest2026.pem"
    path.write_bytes(_pem(rsa_key, serialization.PrivateFormat.PKCS8))
    return load_key(DOMAIN, SELECTOR, path)


@pytest.fixture(scope="module")
def dns(rsa_key: rsa.RSAPrivateKey) -> Dns:
    return dns_stub({DNS_NAME: _txt_record(rsa_key)})


# --- messages -----------------------------------------------------------------------------------


def _headers(**changes: object) -> Headers:
    values: dict[str, object] = {
        "sender": "Paper Digest <digest@example.org>",
        "recipient": "ada@example.org",
        "date": DATE,
        "message_id": "<digest.2026-11-30.5f1c2a9e0b7d4c3a8e6f1b2d@example.org>",
        "list_id": "Paper Digest <digest.example.org>",
        "unsubscribe_url": "https://digest.example.org/unsubscribe/eyJzIjoxLCJwIjoidSJ9.Zk3Q.abc",
    }
    values.update(changes)
    return Headers(**values)  # type: ignore[arg-type]


def _digest(
    subject: str = "2 new papers on KV cache, long context — 30 Nov", text: str | None = None
) -> RenderedDigest:
    """A real rendered digest (the golden files of tests/test_render.py) under a chosen subject."""
    html = (GOLDEN / "digest.html").read_text(encoding="utf-8")
    return RenderedDigest(subject, html, text if text is not None else (GOLDEN / "digest.txt").read_text("utf-8"))


def _message(subject: str | None = None, **header_changes: object) -> bytes:
    return build_message(_digest(subject) if subject else _digest(), _headers(**header_changes))


def _split(data: bytes) -> tuple[bytes, bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no blank line between header and body"
    return head + b"\r\n", body


def _field(data: bytes, name: str) -> bytes:
    """A whole header field, folded lines and final CRLF included."""
    head, _body = _split(data)
    found = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":.*\r\n(?:[ \t].*\r\n)*", head)
    assert found, f"no {name} header"
    return found.group(0)


def _replace_field(data: bytes, name: str, new: bytes) -> bytes:
    head, body = _split(data)
    return head.replace(_field(data, name), new, 1) + b"\r\n" + body


def _tags(signed: bytes) -> dict[bytes, bytes]:
    value = _field(signed, "DKIM-Signature").partition(b":")[2]
    return dict(parse_tag_value(value))


def _signed_names(signed: bytes) -> list[bytes]:
    return [name.strip() for name in _tags(signed)[b"h"].split(b":")]


# --- signing and verifying ----------------------------------------------------------------------


def test_a_signed_digest_verifies_against_the_published_key(key: DkimKey, rsa_key: rsa.RSAPrivateKey) -> None:
    message = _message()
    signed = sign(message, key)
    asked: list[bytes] = []
    assert dkim.verify(signed, dnsfunc=dns_stub({DNS_NAME: _txt_record(rsa_key)}, asked)) is True
    assert asked == [b"digest2026._domainkey.example.org."]
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(message)  # the message itself is not touched
    tags = _tags(signed)
    assert (tags[b"v"], tags[b"a"], tags[b"c"]) == (b"1", b"rsa-sha256", b"relaxed/relaxed")
    assert (tags[b"d"], tags[b"s"]) == (b"example.org", b"digest2026")
    assert b"l" not in tags  # the whole body is signed: nothing can be appended


def test_signed_message_keeps_crlf_and_short_lines(key: DkimKey) -> None:
    signed = sign(_message(LONG_SUBJECT, unsubscribe_url=UNSUBSCRIBE_200), key)
    lines = signed.split(b"\r\n")
    assert b"\n" not in b"".join(lines) and b"\r" not in b"".join(lines)  # CRLF only
    assert max(len(line) for line in lines) <= 998
    assert all(len(line) <= 78 for line in _field(signed, "DKIM-Signature").split(b"\r\n"))
    assert all(line.isascii() for line in lines)


ALL = [b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post"]
WITHOUT_UNSUBSCRIBE = [b"from", b"to", b"subject", b"date", b"message-id"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ALL),
        ({"list_id": None}, ALL),
        ({"unsubscribe_url": None}, WITHOUT_UNSUBSCRIBE),
        ({"unsubscribe_url": None, "list_id": None}, WITHOUT_UNSUBSCRIBE),
    ],
    ids=["list-id-and-unsubscribe", "unsubscribe-only", "list-id-only", "neither"],
)
def test_exactly_the_listed_headers_that_are_present_are_signed(
    key: DkimKey, dns: Dns, changes: dict[str, object], expected: list[bytes]
) -> None:
    signed = sign(build_message(_digest(), _headers(**changes)), key)
    assert _signed_names(signed) == expected
    assert list(SIGNED_HEADERS) == ALL  # the order of h= is the order of SIGNED_HEADERS
    assert dkim.verify(signed, dnsfunc=dns) is True


def test_a_long_folded_non_ascii_subject_verifies(key: DkimKey, dns: Dns) -> None:
    signed = sign(_message(LONG_SUBJECT), key)
    subject = _field(signed, "Subject")
    assert subject.count(b"\r\n") >= 4  # folded over several lines of RFC 2047 encoded words
    assert b"=?utf-8?b?" in subject
    assert dkim.verify(signed, dnsfunc=dns) is True
    assert email.message_from_bytes(signed, policy=policy.default)["Subject"] == LONG_SUBJECT


def test_a_200_character_unsubscribe_url_verifies(key: DkimKey, dns: Dns) -> None:
    assert len(UNSUBSCRIBE_200) == 200
    signed = sign(_message(unsubscribe_url=UNSUBSCRIBE_200), key)
    assert _field(signed, "List-Unsubscribe") == f"List-Unsubscribe: <{UNSUBSCRIBE_200}>\r\n".encode()  # one line
    assert dkim.verify(signed, dnsfunc=dns) is True


# --- what relays and mailbox stores may do: relaxed canonicalization absorbs it -----------------


def _stdlib_compat32(data: bytes) -> bytes:
    """Parse and regenerate as Python's legacy API does (mailing-list software): refolds long headers."""
    pol = policy.compat32.clone(linesep="\r\n")
    return email.message_from_bytes(data, policy=pol).as_bytes(policy=pol)


def _stdlib_smtp(data: bytes) -> bytes:
    pol = policy.SMTP.clone(refold_source="none")
    return email.message_from_bytes(data, policy=pol).as_bytes(policy=pol)


def _unfold_all(data: bytes) -> bytes:
    head, body = _split(data)
    return re.sub(rb"\r\n(?=[ \t])", b"", head) + b"\r\n" + body


def _fold_subject_at_every_space(data: bytes) -> bytes:
    subject = _field(data, "Subject")
    name, _colon, value = subject.partition(b":")
    words = value.split()
    return _replace_field(data, "Subject", name + b": " + b"\r\n\t".join(words) + b"\r\n")


def _fold_long_url_header(data: bytes) -> bytes:
    return data.replace(b"List-Unsubscribe: <", b"List-Unsubscribe:\r\n <", 1)


def _shout_header_names(data: bytes) -> bytes:
    head, body = _split(data)
    head = re.sub(rb"(?m)^([A-Za-z-]+):", lambda m: m.group(1).upper() + b":", head)
    return head + b"\r\n" + body


def _whitespace_after_colons_and_in_values(data: bytes) -> bytes:
    data = data.replace(b"\r\nTo: ", b"\r\nTo:\t   ", 1)
    return data.replace(b"From: Paper Digest", b"From:  Paper \t  Digest", 1)


def _trailing_whitespace_on_body_lines(data: bytes) -> bytes:
    head, body = _split(data)
    return head + b"\r\n" + body.replace(b"\r\n", b" \t\r\n")


def _blank_lines_at_the_end(data: bytes) -> bytes:
    return data + b"\r\n\r\n\r\n"


def _lf_line_endings(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _received_header_prepended(data: bytes) -> bytes:
    return b"Received: from mail.example.org by mx.example.net; Mon, 30 Nov 2026 08:00:01 +0000\r\n" + data


@pytest.mark.parametrize(
    "transform",
    [
        _stdlib_compat32,
        _unfold_all,
        _fold_subject_at_every_space,
        _fold_long_url_header,
        _shout_header_names,
        _whitespace_after_colons_and_in_values,
        _trailing_whitespace_on_body_lines,
        _blank_lines_at_the_end,
        _lf_line_endings,
        _received_header_prepended,
    ],
)
def test_refolding_and_whitespace_changes_keep_the_signature(
    key: DkimKey, dns: Dns, transform: Callable[[bytes], bytes]
) -> None:
    signed = sign(_message(LONG_SUBJECT, unsubscribe_url=UNSUBSCRIBE_200), key)
    changed = transform(signed)
    assert changed != signed
    assert dkim.verify(changed, dnsfunc=dns) is True


def test_stdlib_smtp_policy_round_trip_is_byte_identical_and_verifies(key: DkimKey, dns: Dns) -> None:
    signed = sign(_message(LONG_SUBJECT, unsubscribe_url=UNSUBSCRIBE_200), key)
    assert _stdlib_smtp(signed) == signed
    assert dkim.verify(_stdlib_smtp(signed), dnsfunc=dns) is True


def test_compat32_round_trip_really_refolds_the_long_headers(key: DkimKey) -> None:
    signed = sign(_message(LONG_SUBJECT, unsubscribe_url=UNSUBSCRIBE_200), key)
    again = _stdlib_compat32(signed)
    assert _field(again, "List-Unsubscribe") == f"List-Unsubscribe: \r\n <{UNSUBSCRIBE_200}>\r\n".encode()
    assert _field(again, "Subject") != _field(signed, "Subject")


def test_signature_survives_delivery_over_smtp(key: DkimKey, dns: Dns, smtp_server: SmtpServer) -> None:
    text = "Your papers\n.a line that starts with a dot is dot-stuffed on the wire\n..and two\n"
    data = sign(build_message(_digest(LONG_SUBJECT, text), _headers(unsubscribe_url=UNSUBSCRIBE_200)), key)
    results: list[Result] = []
    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5, connections=1)
    transport.deliver([Outgoing(1, "digest@example.org", "ada@example.org", data, "ada")], results.append)
    assert [r.outcome for r in results] == [Outcome.SENT]
    (received,) = smtp_server.messages
    assert b"\r\n.a line that starts" in received.data
    assert dkim.verify(received.data, dnsfunc=dns) is True


# --- what must break it -------------------------------------------------------------------------


def _new_subject(data: bytes) -> bytes:
    return _replace_field(data, "Subject", b"Subject: 25 new papers on crypto giveaways - 30 Nov\r\n")


def _new_to(data: bytes) -> bytes:
    return _replace_field(data, "To", b"To: eve@example.org\r\n")


def _new_from(data: bytes) -> bytes:
    return _replace_field(data, "From", b"From: Paper Digest <digest@example.net>\r\n")


def _new_unsubscribe_url(data: bytes) -> bytes:
    return _replace_field(data, "List-Unsubscribe", b"List-Unsubscribe: <https://evil.example/u>\r\n")


def _unsubscribe_removed(data: bytes) -> bytes:
    return _replace_field(data, "List-Unsubscribe", b"")


def _one_letter_of_the_text(data: bytes) -> bytes:
    head, body = _split(data)
    part_headers_end = body.index(b"\r\n\r\n")  # the text/plain part's own headers
    word = re.compile(rb"[a-z]{6,}").search(body, part_headers_end)
    assert word is not None
    last = word.end() - 1
    return head + b"\r\n" + body[:last] + (b"x" if body[last : last + 1] != b"x" else b"y") + body[last + 1 :]


def _line_appended_to_the_body(data: bytes) -> bytes:
    return data + b"P.S. also see https://evil.example\r\n"


@pytest.mark.parametrize(
    "tamper",
    [
        _new_subject,
        _new_to,
        _new_from,
        _new_unsubscribe_url,
        _unsubscribe_removed,
        _one_letter_of_the_text,
        _line_appended_to_the_body,
    ],
)
def test_tampering_fails_verification(key: DkimKey, dns: Dns, tamper: Callable[[bytes], bytes]) -> None:
    signed = sign(_message(LONG_SUBJECT, unsubscribe_url=UNSUBSCRIBE_200), key)
    assert dkim.verify(signed, dnsfunc=dns) is True
    tampered = tamper(signed)
    assert tampered != signed
    assert dkim.verify(tampered, dnsfunc=dns) is False


def test_a_signature_does_not_carry_over_to_another_reader(key: DkimKey, dns: Dns) -> None:
    for_ada = sign(_message(recipient="ada@example.org"), key)
    for_bob = sign(_message(recipient="Bob <bob@example.org>"), key)
    assert dkim.verify(for_bob, dnsfunc=dns) is True
    grafted = _field(for_ada, "DKIM-Signature") + for_bob[len(_field(for_bob, "DKIM-Signature")) :]
    assert _field(grafted, "To") == b"To: Bob <bob@example.org>\r\n"
    assert dkim.verify(grafted, dnsfunc=dns) is False


def test_a_different_or_missing_published_key_fails(key: DkimKey) -> None:
    signed = sign(_message(), key)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert dkim.verify(signed, dnsfunc=dns_stub({DNS_NAME: _txt_record(other)})) is False
    assert dkim.verify(signed, dnsfunc=dns_stub({})) is False


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda data: _replace_field(data, "From", b""), "cannot DKIM-sign a message without a From header"),
        (lambda data: b"not a header line\r\n" + data, "cannot DKIM-sign a malformed message: Unexpected characters"),
    ],
    ids=["no-from", "not-a-header"],
)
def test_sign_refuses_messages_it_cannot_sign(key: DkimKey, broken: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(DkimError, match=re.escape(message)) as info:
        sign(broken(_message()), key)
    assert "\n" not in str(info.value)


def test_sign_turns_a_bad_key_into_one_line_dkim_error(key: DkimKey) -> None:
    broken = replace(key, private_key=b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DkimError) as info:
        sign(_message(), broken)
    assert "d=example.org s=digest2026" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_private_key_is_not_in_the_repr(key: DkimKey) -> None:
    assert "PRIVATE" not in repr(key)
    assert repr(key) == "DkimKey(domain='example.org', selector='digest2026')"


# --- loading keys -------------------------------------------------------------------------------


def _crlf(pem: bytes) -> bytes:
    return pem.replace(b"\n", b"\r\n")


@pytest.mark.parametrize(
    ("fmt", "line_endings"),
    [
        (serialization.PrivateFormat.PKCS8, lambda pem: pem),  # openssl genpkey / genrsa (OpenSSL 3)
        (serialization.PrivateFormat.TraditionalOpenSSL, lambda pem: pem),  # BEGIN RSA PRIVATE KEY
        (serialization.PrivateFormat.PKCS8, _crlf),  # a key file saved on Windows
    ],
    ids=["pkcs8", "pkcs1", "pkcs8-crlf"],
)
def test_load_key_accepts_the_usual_pem_forms(
    rsa_key: rsa.RSAPrivateKey,
    dns: Dns,
    tmp_path: Path,
    fmt: serialization.PrivateFormat,
    line_endings: Callable[[bytes], bytes],
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(line_endings(_pem(rsa_key, fmt)))
    loaded = load_key("Example.ORG", SELECTOR, path)
    assert (loaded.domain, loaded.selector) == ("example.org", "digest2026")
    assert dkim.verify(sign(_message(), loaded), dnsfunc=dns) is True


def _small_key_pem() -> bytes:
    """A 511-bit RSA key (2^255-19 and 2^256-189 are prime): too weak for DKIM."""
    p, q, e = 2**255 - 19, 2**256 - 189, 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q)
    )
    return _pem(numbers.private_key(unsafe_skip_rsa_key_validation=True), serialization.PrivateFormat.PKCS8)


def _public_key_pem() -> bytes:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _encrypted_pem() -> bytes:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the DKIM key {path}: No such file or directory"),
        ("dir", "cannot read the DKIM key {path}: Is a directory"),
        (b"", "the DKIM key {path} is not an unencrypted PEM RSA private key"),
        (b"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n", "{path} is not an unencrypted PEM"),
        (b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "{path} is not an unencrypted"),
        (b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", "{path} is not an unencrypted PEM"),
        (_public_key_pem, "{path} is not an unencrypted PEM RSA private key"),
        (_ed25519_pem, "{path} is not an unencrypted PEM RSA private key"),
        (_encrypted_pem, "{path} is not an unencrypted PEM RSA private key"),
        (_small_key_pem, "the DKIM key {path} has 511 bits; use at least 2048"),
    ],
    ids=[
        "missing",
        "directory",
        "empty",
        "dns-record",
        "not-der",
        "not-b64",
        "public",
        "ed25519",
        "encrypted",
        "small",
    ],
)
def test_load_key_refuses_with_one_line_naming_the_file(
    tmp_path: Path, content: bytes | str | Callable[[], bytes] | None, message: str
) -> None:
    path = tmp_path / "keys" / "digest2026.pem"
    path.parent.mkdir()
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif callable(content):
        path.write_bytes(content())
    with pytest.raises(DkimError) as info:
        load_key(DOMAIN, SELECTOR, path)
    text = str(info.value)
    assert message.format(path=path) in text
    assert str(path) in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("domain", "selector", "message"),
    [
        ("localhost", SELECTOR, "DKIM domain 'localhost' is not a DNS name"),
        ("example..org", SELECTOR, "DKIM domain 'example..org' is not a DNS name"),
        ("exämple.org", SELECTOR, "DKIM domain 'exämple.org' is not a DNS name"),
        ("-bad.example.org", SELECTOR, "DKIM domain '-bad.example.org' is not a DNS name"),
        (DOMAIN, "", "DKIM selector '' is not a DNS name"),
        (DOMAIN, "sel ector", "DKIM selector 'sel ector' is not a DNS name"),
        (DOMAIN, "s;x=1", "DKIM selector 's;x=1' is not a DNS name"),
    ],
)
def test_load_key_refuses_names_that_cannot_be_in_dns(
    key: DkimKey, tmp_path: Path, domain: str, selector: str, message: str
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_key)
    with pytest.raises(DkimError, match=re.escape(message)):
        load_key(domain, selector, path)


def test_a_dotted_selector_is_allowed(key: DkimKey, tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_key)
    loaded = load_key(DOMAIN, "2026.eu", path)
    stub = dns_stub({b"2026.eu._domainkey.example.org.": _txt_record(rsa_key)})
    assert dkim.verify(sign(_message(), loaded), dnsfunc=stub) is True


# --- wired into Settings and the pipeline -------------------------------------------------------


def _dkim_settings(settings: Settings, key_file: Path, **changes: object) -> Settings:
    values: dict[str, Any] = {
        **settings.model_dump(exclude={"from_address"}),
        "DIGEST_FROM": "Paper Digest <digest@example.org>",
        "dkim_domain": DOMAIN,
        "dkim_selector": SELECTOR,
        "dkim_key_path": key_file,
        **changes,
    }
    return Settings(_env_file=None, **values)


def test_every_digest_is_signed_when_dkim_is_configured(
    session: Session, settings: Settings, rsa_key: rsa.RSAPrivateKey, dns: Dns, tmp_path: Path
) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(_pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL))
    signing = _dkim_settings(settings, key_file)
    assert signing.dkim_key is not None and signing.dkim_key.domain == DOMAIN
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    add_papers(session, paper("2611.00001", "KV cache tricks", first_seen=now - timedelta(hours=3)))
    subscriber(session, "ada@example.org", ["cache"], joined=now - timedelta(days=30))
    assert run_send(session, signing, OutboxTransport(signing.outbox_dir), now).counts["sent"] == 1
    (eml,) = signing.outbox_dir.glob("*.eml")
    data = eml.read_bytes()
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=dns) is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dkim_selector": None}, "together"),
        ({"dkim_key_path": Path("/nonexistent/dkim.pem")}, "/nonexistent/dkim.pem"),
        ({"DIGEST_FROM": "Paper Digest <digest@other.example>"}, "DMARC alignment"),
    ],
)
def test_bad_dkim_configuration_is_refused_at_start(
    settings: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(_pem(rsa_key, serialization.PrivateFormat.PKCS8))
    with pytest.raises(ValidationError, match=message):
        _dkim_settings(settings, key_file, **changes)
