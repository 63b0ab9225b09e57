"""The evaluation's report as Markdown (bench/eval/results.md)."""

from __future__ import annotations

from typing import Any

from bench.eval.evaluate import METHODS, METRICS

# The reference point (boolean topics on an external set) and target.
REFERENCE = {"recall": 0.69, "precision": 0.74, "ndcg@20": 0.83}
TARGET = {"recall": 0.9, "precision": 0.7, "ndcg@20": 0.92}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def macro_table(report: dict[str, Any]) -> str:
    lines = [_row(["method", *METRICS]), _row(["---"] * (len(METRICS) + 1))]
    for method in METHODS:
        lines.append(_row([method, *(f"{report['macro'][method][m]:.2f}" for m in METRICS)]))
    lines.append(_row(["*issue 13: boolean, external set*", *(f"{REFERENCE.get(m, '')}" for m in METRICS)]))
    lines.append(
        _row(
            [
                "*issue 13: target (topics + examples + votes)*",
                *(f"≥ {TARGET[m]}" if m in TARGET else "" for m in METRICS),
            ]
        )
    )
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    out = [
        "# Relevance evaluation (`make eval`)",
        "",
        f"{report['papers']} papers, {len(report['interests'])} reader interests, model {report['model']}, "
        f"TEXT_THRESHOLD {report['thresholds']['TEXT_THRESHOLD']}, PAPER_THRESHOLD "
        f"{report['thresholds']['PAPER_THRESHOLD']}. Every paper a method's topics match counts as shown "
        "(no cap); an interest's example papers count neither way. See bench/eval/PROVENANCE.md.",
        "",
        "## Macro average over interests",
        "",
        macro_table(report),
        "",
        "## Per interest",
        "",
        _row(["interest", "relevant", "judged", *(f"{m} R/P/nDCG (shown)" for m in METHODS)]),
        _row(["---"] * (len(METHODS) + 3)),
    ]
    for name, row in report["per_interest"].items():
        counts = report["interests"][name]
        cells = [
            f"{row[m]['recall']:.2f}/{row[m]['precision']:.2f}/{row[m]['ndcg@20']:.2f} ({int(row[m]['shown'])})"
            for m in METHODS
        ]
        out.append(_row([name, str(counts["relevant"]), str(counts["judged"]), *cells]))
    if "sweep" in report:
        out += ["", "## Threshold sweep (macro; semantic method for TEXT, examples method for PAPER)", ""]
        for kind, name in (("text", "TEXT_THRESHOLD"), ("paper", "PAPER_THRESHOLD")):
            sweep = report["sweep"][kind]
            out += [_row([name, *METRICS]), _row(["---"] * (len(METRICS) + 1))]
            for r in sweep["rows"]:
                mark = " (now)" if r["threshold"] == sweep["current"] else ""
                mark += " **best F1**" if r["threshold"] == sweep["best"]["threshold"] else ""
                out.append(_row([f"{r['threshold']}{mark}", *(f"{r[m]:.2f}" for m in METRICS)]))
            out.append("")
    out += votes_section(report)
    return "\n".join(out)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def votes_section(report: dict[str, Any]) -> list[str]:
    """nDCG@20 of the papers not yet shown after each simulated digest: learned vs plain order."""
    votes = report.get("votes")
    if votes is None:
        return ["The votes method is not measured: digest/rank.py is not there.", ""]
    digests = range(1, votes["digests"] + 1)
    out = [
        f"## Votes: nDCG@20 of the unshown papers after each digest ({votes['shown']} shown per digest, "
        "the reader votes on all of them from the labels; combined topics, re-ranked by digest/rank.py; "
        "– once no wanted paper is left)",
        "",
        _row(["interest", *(f"after {d}: learned / topic order" for d in digests)]),
        _row(["---"] * (votes["digests"] + 1)),
    ]
    rows = {**votes["per_interest"], "**macro**": votes["macro"]}
    for name, row in rows.items():
        cells = [f"{_num(a)} / {_num(b)}" for a, b in zip(row["learned"], row["static"], strict=True)]
        out.append(_row([name, *cells]))
    return [*out, ""]
