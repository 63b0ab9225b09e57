"""Fuzz the topic query compiler: parse_query raises only QueryError (with a column inside the
topic), and a topic that parses compiles against a small PaperIndex through match.select.

    python -m tests.fuzz.fuzz_query [libFuzzer flags] [corpus folders]
"""

from __future__ import annotations

from tests.fuzz.runner import fuzz, load_checks


def decode(data: bytes) -> str:
    """One fuzz input as a topic: UTF-8, undecodable bytes kept as lone surrogates."""
    return data.decode("utf-8", "surrogateescape")


def main() -> None:
    """Entry point of `python -m tests.fuzz.fuzz_query`."""
    checks = load_checks()
    fuzz(lambda data: checks.check_query(decode(data)))


if __name__ == "__main__":
    main()
