"""Issue 5's targets next to the measured values, and the Markdown table."""

from __future__ import annotations

from typing import Any

FULL_DAY = 100_000  # the targets are stated for 100,000 subscribers
# Measuring harnesses that hold a whole sample of rendered messages in memory: not pipeline processes.
HARNESS_STAGES = ("digest stage", "naive stage")


def _target(
    tid: str, name: str, goal: str, value: float | None, shown: str, ok: bool | None, note: str = ""
) -> dict[str, Any]:
    return {"id": tid, "target": name, "goal": goal, "measured": value, "shown": shown, "pass": ok, "note": note}


def _scale_note(n: int) -> str:
    return "" if n == FULL_DAY else f"projected to 100,000 from {n:,} subscribers (linear)"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 5, measured in this run, with pass/fail."""
    n = result["meta"]["subscribers"]
    stages = result["stages"]
    out: list[dict[str, Any]] = []

    match = stages["match"]
    match_100k = match["match_s"] * FULL_DAY / max(1, match["subscribers"])
    out.append(
        _target(
            "match_100k_s", "Match 100,000 subscribers × 2,000 papers", "≤ 10 s", round(match_100k, 2),
            f"{match_100k:.1f} s", match_100k <= 10, _scale_note(match["subscribers"]),
        )
    )  # fmt: skip

    per = stages["digest"]["per_digest"]
    out.append(
        _target(
            "per_digest_cpu_ms", "CPU per digest, matched papers → bytes on the socket", "≤ 4 ms",
            per["cpu_ms_each"], f"{per['cpu_ms_each']:.2f} ms ({1000 / per['cpu_ms_each']:.0f}/s/core)",
            per["cpu_ms_each"] <= 4,
        )
    )  # fmt: skip

    celery = result.get("celery") or {}
    naive = stages["naive"]["per_s"]
    two = celery.get("2")
    if two:
        wall_100k = two["projected_wall_s"] * FULL_DAY / n
        note = _scale_note(n)
        if two["stopped_at_budget"]:
            note = (note + "; " if note else "") + (
                f"stopped at the time budget after {two['settled']:,} subscribers: planning time + the rest at the "
                "measured steady rate"
            )
        out.append(
            _target(
                "e2e_100k_2_workers_s", "End to end, 100,000 digests with 2 worker processes", "≤ 300 s",
                round(wall_100k, 1), f"{wall_100k:.0f} s", wall_100k <= 300, note,
            )
        )  # fmt: skip
        rate2 = projected_digest_rate(two)
        ratio = rate2 / naive if naive else 0.0
        out.append(
            _target(
                "e2e_vs_naive", "End-to-end rate (2 workers) ÷ naive baseline", "≥ 10×", round(ratio, 2),
                f"{ratio:.1f}× ({rate2:.0f} vs {naive:.1f} digests/s)", ratio >= 10,
            )
        )  # fmt: skip
    else:
        out.append(
            _target("e2e_100k_2_workers_s", "End to end with 2 worker processes", "≤ 300 s", None, "not run", None)
        )
        out.append(_target("e2e_vs_naive", "End-to-end rate ÷ naive baseline", "≥ 10×", None, "not run", None))

    send = stages["digest"]["send"]["per_s"]
    ceiling = result["smtp_source"]["msg_per_s"]
    fraction = send / ceiling if ceiling else 0.0
    out.append(
        _target(
            "send_fraction_of_smtp_source", "Send stage ÷ smtp-source to the same sink", "≥ 50%", round(fraction, 3),
            f"{100 * fraction:.0f}% ({send:,.0f} vs {ceiling:,.0f} msg/s)", fraction >= 0.5,
        )
    )  # fmt: skip

    peaks = {k: v for k, v in peak_rss(result).items() if not k.startswith(HARNESS_STAGES)}
    worst_name, worst = max(peaks.items(), key=lambda kv: kv[1]) if peaks else ("", 0.0)
    cut = [name for name, run in _long_runs(result) if run["stopped_at_budget"]]
    note = _scale_note(n)
    if cut:
        note = (note + "; " if note else "") + (
            f"the {', '.join(cut)} run(s) stopped at the time budget: their RSS is the peak up to that point"
        )
    out.append(
        _target(
            "peak_rss_mb", "Peak RSS per pipeline process (match, send_chunk, Celery workers)", "≤ 1,024 MB", worst,
            f"{worst:.0f} MB ({worst_name})", worst <= 1024, note,
        )
    )  # fmt: skip

    quarter, full = stages["match_quarter"], stages["match"]
    g_quarter = max(0.0, quarter["peak_rss_mb"] - quarter["rss_after_index_mb"])
    g_full = max(0.0, full["peak_rss_mb"] - full["rss_after_index_mb"])
    sublinear = g_full < 32 or g_full <= 2 * g_quarter
    out.append(
        _target(
            "memory_sublinear", "Memory growth with subscribers (match stage at N/4 and N)",
            "sub-linear: ≤ 2× the growth for 4× the readers (linear = 4×)",
            round(g_full / g_quarter, 2) if g_quarter else None,
            f"{quarter['peak_rss_mb']:.0f} MB at {quarter['subscribers']:,} → {full['peak_rss_mb']:.0f} MB at "
            f"{full['subscribers']:,} (growth above the index {g_quarter:.0f} → {g_full:.0f} MB, "
            f"{g_full / g_quarter if g_quarter else 0:.1f}×)",
            sublinear,
        )
    )  # fmt: skip

    one = celery.get("1")
    if one and two:
        ratio = (two["subscribers"] / two["projected_wall_s"]) / (one["subscribers"] / one["projected_wall_s"])
        out.append(
            _target(
                "scaling_1_to_2_workers", "Throughput, 2 worker processes ÷ 1", "≥ 1.6×", round(ratio, 3),
                f"{int(ratio * 1000) / 1000:.3f}× ({one['projected_wall_s']:.1f} s → {two['projected_wall_s']:.1f} s "
                f"for {n:,})",  # truncated, not rounded: a 1.5998 must not read as the 1.6 it missed
                ratio >= 1.6, _cores_note(result),
            )
        )  # fmt: skip
    else:
        out.append(_target("scaling_1_to_2_workers", "Throughput, 2 workers ÷ 1", "≥ 1.6×", None, "not run", None))
    return out


def _cores_note(result: dict[str, Any]) -> str:
    """Where the cores went in each Celery run: workers, smtp-sink (on the same machine), the rest."""
    cpus = result["meta"]["cpus"]
    parts = []
    for workers, run in sorted((result.get("celery") or {}).items()):
        if "cores_busy" in run:
            parts.append(
                f"×{workers}: {run['cores_busy']:.2f} of {cpus} cores busy — workers {run['worker_cores']:.2f}, "
                f"smtp-sink {run['sink_cores']:.2f}"
            )
    return "; ".join(parts)


def _long_runs(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    runs = [("one-process end-to-end", result["stages"]["e2e"])]
    runs += [(f"Celery ×{w}", r) for w, r in (result.get("celery") or {}).items()]
    return runs


def projected_digest_rate(run: dict[str, Any]) -> float:
    """Digests handed to SMTP per second over the whole day (projected when the run was cut short)."""
    if not run["settled"]:
        return 0.0
    sent_all = run["digests_sent"] * run["subscribers"] / run["settled"]
    return float(sent_all / run["projected_wall_s"])


def peak_rss(result: dict[str, Any]) -> dict[str, float]:
    """Peak RSS of every process the benchmark measured."""
    peaks = {f"{name} stage": float(s["peak_rss_mb"]) for name, s in result["stages"].items() if "peak_rss_mb" in s}
    for workers, run in (result.get("celery") or {}).items():
        for proc, mb in run["peak_rss_mb_by_process"].items():
            peaks[f"celery×{workers} {proc.split(':')[0]}"] = max(
                peaks.get(f"celery×{workers} {proc.split(':')[0]}", 0), mb
            )
    return peaks


def _mark(ok: bool | None) -> str:
    return "—" if ok is None else ("✅ pass" if ok else "❌ FAIL")


def markdown(result: dict[str, Any]) -> str:
    """The short report: targets with pass/fail, then what each stage measured."""
    meta, stages = result["meta"], result["stages"]
    d, celery = stages["digest"], result.get("celery") or {}
    lines = [
        f"## Big-day benchmark — {meta['subscribers']:,} subscribers × {meta['papers']:,} papers",
        "",
        f"{meta['finished'][:16].replace('T', ' ')} UTC · commit {meta['git_commit'] or '?'} · {meta['database']} · "
        f"{meta['cpus']} cores, load {meta['load_average'][0]} at the end · seed {meta['seed']}"
        + (" · quick preset" if meta["quick"] else ""),
        "",
        "| target (issue 5) | goal | measured | |",
        "|---|---|---|---|",
    ]
    for t in result["targets"]:
        note = f" <br><sub>{t['note']}</sub>" if t["note"] else ""
        lines.append(f"| {t['target']} | {t['goal']} | {t['shown']}{note} | {_mark(t['pass'])} |")
    m, mq = stages["match"], stages["match_quarter"]
    naive, e2e = stages["naive"], stages["e2e"]
    src = result["smtp_source"]
    lines += [
        "",
        "| stage | throughput | per item | peak RSS |",
        "|---|---|---|---|",
        f"| match (`select` per reader; index built in {m['index_build_s']} s) | "
        f"{m['subscribers_per_s']:,.0f} subscribers/s "
        f"({m['match_s']} s for {m['subscribers']:,}; {mq['match_s']} s for {mq['subscribers']:,}) | "
        f"{1e6 / max(1, m['subscribers_per_s']):.0f} µs | {m['peak_rss_mb']:.0f} MB |",
        f"| render (`render_digest`) | {d['render']['per_s']:,.0f} emails/s | {d['render']['cpu_ms_each']} ms CPU | "
        f"{d['peak_rss_mb']:.0f} MB (harness: holds the sample) |",
        f"| MIME (`build_message`) | {d['mime']['per_s']:,.0f} emails/s | {d['mime']['cpu_ms_each']} ms CPU | ″ |",
        f"| send (`SmtpTransport`, {d['send']['connections']} connections → smtp-sink) | "
        f"{d['send']['per_s']:,.0f} msg/s "
        f"| {d['send']['cpu_ms_each']} ms CPU | ″ |",
        f"| smtp-source → smtp-sink ({src['sessions']} sessions, ceiling) | {src['msg_per_s']:,.0f} msg/s | "
        f"{src['message_bytes']:,} B messages | — |",
        f"| per digest: `compose_message` + send | {d['per_digest']['per_s']:,.0f} digests/s | "
        f"{d['per_digest']['cpu_ms_each']} ms CPU ({d['per_digest']['compose_cpu_ms_each']} compose + "
        f"{d['per_digest']['send_cpu_ms_each']} send; caches cold — warm: "
        f"{d.get('per_digest_warm', {}).get('cpu_ms_each', '?')} ms) | ″ |",
        f"| naive baseline (premailer per email + stdlib MIME + 1 connection) | {naive['per_s']:,.1f} digests/s | "
        f"{naive['cpu_ms_each']} ms CPU | {naive['peak_rss_mb']:.0f} MB |",
        f"| end to end, one process (`plan_due` + `send_chunk`) | {e2e['digests_per_s']:,.0f} digests/s | "
        f"{e2e['cpu_ms_per_digest']} ms CPU | {e2e['peak_rss_mb']:.0f} MB |",
    ]
    for workers, run in sorted(celery.items()):
        cut = f", stopped after {run['settled']:,}" if run["stopped_at_budget"] else ""
        lines.append(
            f"| end to end, Celery, {workers} worker process{'es' if workers != '1' else ''} | "
            f"{run['digests_per_s']:,.0f} digests/s ({run['wall_s']} s{cut}; "
            f"planning {run['plan_s_until_first_row']} s) | "
            f"{run['cpu_ms_per_digest']} ms CPU | {run['peak_rss_mb']:.0f} MB |"
        )
    lines += [
        "",
        f"- Digests: {d['mean_papers_per_digest']} papers, {d['mean_html_bytes']:,} B of HTML, "
        f"{d['mean_message_bytes']:,} B "
        f"on the wire on average; {100 * m['nonempty_share']:.0f}% of readers get one. "
        f"{result['generate']['distinct_topics']} distinct topics in use, "
        f"{result['generate']['topics_per_reader']} per reader. Naive steps (ms): "
        + ", ".join(f"{k} {v}" for k, v in naive["steps_ms_each"].items())
        + ".",
    ]
    lines += [f"- {note}" for note in notes(result)]
    if e2e["stopped_at_budget"]:
        lines.append(
            f"- The one-process end-to-end run stopped at the {meta['budget_s']:.0f} s budget after "
            f"{e2e['subscribers_processed']:,} subscribers; its rates are over that part."
        )
    return "\n".join(lines) + "\n"


def notes(result: dict[str, Any]) -> list[str]:
    """Failures the run saw (digests that could not be composed, sends that did not go out)."""
    out = []
    meta = result["meta"]
    if meta.get("code_changed_during_run"):
        out.append("**The code under test changed while this run was going: its figures mix two versions.**")
    elif meta.get("code_uncommitted_changes"):
        out.append(
            "Measured with uncommitted changes in digest/, workers/ or email_templates/ "
            f"(fingerprint {meta['code_fingerprint']})."
        )
    d = result["stages"]["digest"]
    if d.get("render_errors"):
        example = d["render_error_examples"][0] if d["render_error_examples"] else ""
        out.append(
            f"{d['render_errors']} sampled digests could not be rendered and were left out of the sample "
            f"(the pipeline marks them `failed`): {example}"
        )
    e2e = result["stages"]["e2e"]
    runs = {"one process": (e2e["counts"], e2e["stopped_at_budget"])}
    runs.update(
        {f"Celery ×{w}": (r["counts"], r["stopped_at_budget"]) for w, r in (result.get("celery") or {}).items()}
    )
    for name, (counts, cut) in runs.items():
        bad = {k: v for k, v in counts.items() if k in ("failed", "unknown", "retry")}
        if not cut:
            bad.update({k: v for k, v in counts.items() if k in ("pending", "sending")})
        if bad:
            out.append(f"end to end ({name}): rows not sent: {bad} (of {sum(counts.values()):,} rows)")
    return out


def main(argv: list[str]) -> int:
    """Re-evaluate the targets and rewrite the table of an existing report: `python -m bench.report FILE.json`."""
    import json
    from pathlib import Path

    path = Path(argv[0])
    result = json.loads(path.read_text())
    result["targets"] = targets(result)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    table = markdown(result)
    path.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
