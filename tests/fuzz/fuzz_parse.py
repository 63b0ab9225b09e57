"""Fuzz feed parsing for one source kind: `parse` raises only FeedError, and what it returns is
plain text within the limits (tests/fuzz/checks.py).

Stricter than that contract on purpose: a FeedError that only wraps another exception (parse's
last-resort guard) and an entry skipped as "unreadable" (the per-entry guard) are findings too —
each is a parser bug that costs a whole feed or a good entry.

    python -m tests.fuzz.fuzz_parse KIND [libFuzzer flags] [corpus folders]   (KIND: arxiv-rss, …)
"""

from __future__ import annotations

import sys

from tests.fuzz.runner import fuzz, load_checks

KINDS = ("arxiv-rss", "arxiv-atom", "hf-json", "rss")


def main() -> None:
    """Entry point of `python -m tests.fuzz.fuzz_parse KIND`: the kind, then libFuzzer's own arguments."""
    if len(sys.argv) < 2 or sys.argv[1] not in KINDS:
        sys.exit(f"usage: python -m tests.fuzz.fuzz_parse {{{','.join(KINDS)}}} [libFuzzer flags] [corpus]")
    checks = load_checks()
    kind = checks.SourceKind(sys.argv[1])
    fuzz(lambda data: checks.check_parse(kind, data) and None, [sys.argv[0], *sys.argv[2:]])


if __name__ == "__main__":
    main()
