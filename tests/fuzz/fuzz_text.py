"""Fuzz text cleaning: html_to_text, plain_text, squash, words and clip never raise on any str,
return one printable line, and stay linear in time: every 1,024th input (and the first, so a
reproduction run of one crash file checks it too) is also cleaned repeated to 32 KB and to 256 KB
and the two times compared (checks.check_linear); -timeout and -max_len bound every input.
Which inputs are timed is a counter, not a byte of the input, so coverage cannot favour the slow path.

    python -m tests.fuzz.fuzz_text [libFuzzer flags] [corpus folders]
"""

from __future__ import annotations

from types import ModuleType

import atheris

from tests.fuzz.runner import fuzz, load_checks

TIME_EVERY = 1024
checks: ModuleType  # tests.fuzz.checks, loaded instrumented by main()
runs = 0


def decode(data: bytes) -> tuple[str, int]:
    """One fuzz input as (text, clip limit): two bytes of limit, then any str, surrogates too."""
    fdp = atheris.FuzzedDataProvider(data)
    limit = int(fdp.ConsumeIntInRange(1, 600))
    return str(fdp.ConsumeUnicode(fdp.remaining_bytes())), limit


def test_one(data: bytes) -> None:
    """The checks of digest.text on one fuzz input."""
    global runs
    text, limit = decode(data)
    checks.check_text(text, limit)
    if runs % TIME_EVERY == 0:
        checks.check_linear(text)
    runs += 1


def main() -> None:
    """Entry point of `python -m tests.fuzz.fuzz_text`."""
    global checks
    checks = load_checks()
    fuzz(test_one)


if __name__ == "__main__":
    main()
