"""DKIM signing (RFC 6376) of the messages `digest.mime.build_message` produces. Pure.

rsa-sha256 with relaxed/relaxed canonicalization, so the refolding and whitespace changes relays
are allowed to make do not break the signature. Only the headers in `SIGNED_HEADERS` that the
message actually has are signed. The public key is published as the TXT record
`<selector>._domainkey.<domain>` with the value `v=DKIM1; k=rsa; p=<base64 DER public key>`.

dkimpy does the RSA arithmetic in pure Python: about 10 ms per message with a 2048-bit key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
CANONICALIZATION = (b"relaxed", b"relaxed")
MIN_KEY_BITS = 1024  # RFC 8301: verifiers reject shorter keys; use 2048
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


class DkimError(ValueError):
    """A key that cannot be used, or a message that cannot be signed. One line."""


@dataclass(frozen=True)
class DkimKey:
    """A signing domain (d=), selector (s=) and PEM RSA private key (PKCS#1 or PKCS#8)."""

    domain: str
    selector: str
    private_key: bytes = field(repr=False)  # never in logs or tracebacks


def _dns_name(what: str, value: str, *, min_labels: int) -> str:
    labels = value.split(".")
    if len(labels) < min_labels or not all(_LABEL.fullmatch(label) for label in labels):
        raise DkimError(f"DKIM {what} {value!r} is not a DNS name like example.org")
    return value.lower()


def load_key(domain: str, selector: str, key_path: Path) -> DkimKey:
    """Read and check a PEM RSA private key; a bad path, file or key is one clear DkimError."""
    domain = _dns_name("domain", domain, min_labels=2)
    selector = _dns_name("selector", selector, min_labels=1)
    try:
        data = key_path.read_bytes()
    except OSError as exc:
        raise DkimError(f"cannot read the DKIM key {key_path}: {exc.strerror or exc}") from exc
    # dkimpy's PEM reader only understands LF line endings.
    pem = data.replace(b"\r\n", b"\n").strip() + b"\n"
    try:
        parsed = parse_pem_private_key(pem)
        bits = int(parsed["modulus"]).bit_length()
    except (UnparsableKeyError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise DkimError(f"the DKIM key {key_path} is not an unencrypted PEM RSA private key") from exc
    if bits < MIN_KEY_BITS:
        raise DkimError(f"the DKIM key {key_path} has {bits} bits; use at least 2048")
    return DkimKey(domain=domain, selector=selector, private_key=pem)


def sign(message: bytes, key: DkimKey) -> bytes:
    """The message with a `DKIM-Signature:` header prepended; the message bytes are unchanged.

    `message` is a whole RFC 5322 message with CRLF line endings (what `build_message` returns).
    The signature header is folded with CRLF at about 72 columns.
    """
    try:
        signer = dkim.DKIM(message, linesep=b"\r\n")
    except dkim.DKIMException as exc:
        raise DkimError(f"cannot DKIM-sign a malformed message: {' '.join(str(exc).split())}") from exc
    present = {name.lower() for name, _value in signer.headers}
    include = [name for name in SIGNED_HEADERS if name in present]
    if b"from" not in include:
        raise DkimError("cannot DKIM-sign a message without a From header")
    try:
        signature: bytes = signer.sign(
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.private_key,
            canonicalize=CANONICALIZATION,
            include_headers=include,
        )
    # A DkimKey built by hand (not by load_key) may hold anything: a bad PEM surfaces as any of these.
    except (dkim.DKIMException, UnparsableKeyError, ValueError, TypeError, IndexError) as exc:
        one_line = " ".join(str(exc).split())
        raise DkimError(f"DKIM signing for d={key.domain} s={key.selector} failed: {one_line}") from exc
    return signature + message
