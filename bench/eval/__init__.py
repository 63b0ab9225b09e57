"""The relevance evaluation: `python -m bench.eval` (bench/eval/evaluate.py, PROVENANCE.md)."""
