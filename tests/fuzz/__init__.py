"""Coverage-guided fuzzing (atheris) of the pure core: feed parsing, the query compiler, text cleaning.

Not collected by pytest (no `test_*` files here) and not part of `make test`: `make fuzz` runs each
harness for a bounded time (see __main__.py), and every crash it finds becomes a case in
tests/test_fuzz_regressions.py.
"""
