"""Start atheris on one test function: instrument the code under test, then hand over to libFuzzer."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

import atheris

# Our code and the parsers it hands untrusted input to; instrumenting everything loaded (pydantic,
# SQLAlchemy…) would take a minute before the first input.
INSTRUMENTED = ["digest", "feedparser", "html", "sgmllib"]


def load_checks() -> ModuleType:
    """tests.fuzz.checks imported with coverage instrumentation of INSTRUMENTED (first import only:
    the harnesses call this before anything has imported digest)."""
    with atheris.instrument_imports(include=INSTRUMENTED):
        return importlib.import_module("tests.fuzz.checks")


def fuzz(test_one: Callable[[bytes], None], argv: list[str] | None = None) -> None:
    """Run libFuzzer on test_one with `argv` (its flags and corpus folders; sys.argv by default)."""
    atheris.Setup(argv if argv is not None else sys.argv, test_one)
    atheris.Fuzz()
