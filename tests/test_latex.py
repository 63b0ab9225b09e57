"""LaTeX in feed text reads as text: a table of cases, hostile input, and what reaches the email."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest import latex
from digest.config import PROJECT_ROOT
from digest.latex import MAX_CHARS, escape_literals, latex_to_text, looks_like_latex
from digest.match import Match, PaperIndex, select
from digest.render import render_digest
from digest.text import squash
from tests.test_render import CONTEXT, TEMPLATES, _paper


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        # The three examples.
        (r"$\infty$Bench", "∞Bench"),
        (r"$O(n^2)$", "O(n²)"),
        (r"\textit{stable}", "stable"),
        # Maths, accents, commands pylatexenc knows.
        (r"ALR$^2$: Retrieve-then-Reason", "ALR²: Retrieve-then-Reason"),
        (r"$x_{ij}^{2}$ and $10^{-3}$", "xᵢⱼ² and 10⁻³"),
        (r"$\ell_2$ loss, $\pi_0$", "ℓ₂ loss, π₀"),
        (r"VD--RRT\(^{*}\) Exploration", "VD–RRT* Exploration"),
        (r"$x^{T}$ and $\mathbb{R}^{d}$", "x^T and ℝᵈ".replace("ᵈ", "^d")),  # no superscript T or d: as written
        (r"$\mathcal{O}(\log n)$ time", "𝒪(log n) time"),
        (r"$\sqrt{n}$-consistent", "√(n)-consistent"),
        (r"$$E = mc^2$$ display", "E = mc² display"),
        (r"Schr\"odinger and \'et\'e", "Schrödinger and été"),
        (r"{\it stable} and \emph{local}", "stable and local"),
        (r"\emph{x}: ``quoted'' -- and --- dashes", "x: “quoted” – and — dashes"),
        (r"cutting memory by 50\% (QA2\&QA3)", "cutting memory by 50% (QA2&QA3)"),
        (r"code at \url{https://github.com/a_b/c}", "code at https://github.com/a_b/c"),
        (r"see \href{https://example.org}{our site}", "see our site"),
        (r"\textbf{Bold} \unknowncommand{kept text} end", "Bold kept text end"),
        # Plain text is not LaTeX: left exactly as it is.
        ("costs $5 and $10", "costs $5 and $10"),
        ("between $5-$10 per hour", "between $5-$10 per hour"),
        ("A/B tests with ~100 GPUs & 50% less, #1", "A/B tests with ~100 GPUs & 50% less, #1"),
        ("snake_case and x^2 outside maths", "snake_case and x^2 outside maths"),
        ("C++ and C# -- compared, ``quoted''", "C++ and C# -- compared, ``quoted''"),
        ("{0,1} sets stay", "{0,1} sets stay"),
        # LaTeX and literal characters together: the literal ones keep their meaning.
        (r"$\alpha$ costs $5, 50% of it & more", "α costs $5, 50% of it & more"),
        (r"$k$-NN with ~100 points, Fig.~3", "k-NN with ~100 points, Fig.~3"),
        (r"et~al. show $x$", "et al. show x"),
        (r"we pay \$5 for $y$", "we pay $5 for y"),
        # Hostile or malformed: never raises, always text.
        (r"unbalanced {brace \textit{x", "unbalanced brace x"),
        (r"a } b $x$", "a b x"),
        ("lone $ dollar", "lone $ dollar"),
        (r"$", "$"),
        ("\\", "\\"),
        (r"\\", "\\\\"),
        (r"\verb|x|", r"\verb|x|"),  # converts to nothing: shown as it came
        (r"see \frac", r"see \frac"),  # pylatexenc would say "see %s/%s"
        (r"50% off \frac", r"50% off \frac"),
        (r"\href{only-one-argument}", r"\href{only-one-argument}"),
        ("{" * 3000 + r"\x" + "}" * 3000, "{" * 3000 + r"\x" + "}" * 3000),  # too deep for pylatexenc
        (r"line\\break and \newline too", "line break and too"),
        # Delimited maths and environments are parsed whole, across their spaces.
        (r"flow \(\frac{d\mathbf{x}}{dt} = -\nabla V(\mathbf{x})\), solving", "flow d𝐱/dt = -∇ V(𝐱), solving"),
        (r"energy \(\frac{1}{2}x^2\) and \[ y^2 \] display", "energy 1/2x² and y² display"),
        (r"we use \begin{itemize} \item one \item two \end{itemize} here", "we use * one * two here"),
        # The space after a command stays (TeX's rule would glue the next word to it: "6.2×in").
        (r"shift by 6.2\times in answers", "shift by 6.2× in answers"),
    ],
)
def test_latex_reads_as_text(raw: str, shown: str) -> None:
    assert latex_to_text(raw) == shown


@pytest.mark.parametrize(
    "raw",
    [
        r"\textbf{<script>alert(1)</script>}",
        r"$<img src=x onerror=alert(1)>$",
        r"\href{javascript:alert(1)}{<b>click</b>}",
        r"\url{<a href='x'>}",
    ],
)
def test_the_conversion_makes_text_never_markup(raw: str) -> None:
    """What pylatexenc gives is text with `<` in it at most; the templates escape it like any feed text."""
    out = latex_to_text(raw)
    assert "<" in out  # kept as the characters they are…
    paper = _paper(1, f"{raw} Agents", f"About agents. {raw}")
    index = PaperIndex([paper])
    chosen = select(index, ["agents"], candidates=index.all, cap=5)
    rendered = render_digest(TEMPLATES, replace(CONTEXT, topics=["agents"]), chosen.matches, 0)
    # …and never reach the HTML as tags: every "<" of the feed text is escaped.
    assert "<script" not in rendered.html and "<img" not in rendered.html and "<b>" not in rendered.html
    assert "<a href='x'>" not in rendered.html and "javascript:" not in rendered.html
    assert "&lt;" in rendered.html


@pytest.mark.parametrize(
    "hostile",
    [
        "{" * MAX_CHARS,
        "}" * MAX_CHARS,
        "\\" * MAX_CHARS,
        "$a" * (MAX_CHARS // 2),
        "$" + "^" * (MAX_CHARS - 2) + "$",
        r"\frac{" * (MAX_CHARS // 6),
        r"\begin{x}" * (MAX_CHARS // 9),
        r"\foo" * (MAX_CHARS // 4),
        r"\x " + "&%#~1" * (MAX_CHARS // 5 - 1),
        r"$\alpha_{\beta^{" * (MAX_CHARS // 16),
        ("We study $O(n^2)$ \\textit{stable} methods. " * 400)[:MAX_CHARS],
        "\\x" + "a" * 10 * MAX_CHARS,  # over the limit: shown as it came, not parsed
    ],
)
def test_hostile_latex_is_text_in_bounded_time(hostile: str) -> None:
    start = time.perf_counter()
    out = latex_to_text(hostile)
    assert time.perf_counter() - start < 2.0
    assert isinstance(out, str) and out
    assert "\n" not in out and "\r" not in out  # one line, like all display text


def _whole(text: str) -> str:
    """The reference: pylatexenc over the whole text, as the conversion worked before it parsed only
    the stretches that hold LaTeX."""
    if len(text) > MAX_CHARS or not looks_like_latex(text):
        return text
    try:
        out = squash(latex._to_text(text))
    except Exception:
        return text
    return text if not out or latex._UNFILLED.search(out) else out


def test_real_abstracts_read_the_same_as_when_parsed_whole() -> None:
    """Every title and abstract with LaTeX in the evaluation's real arXiv papers reads as it did when
    pylatexenc parsed the whole text, but for a space kept after a command ("6.2× in", not "6.2×in")."""
    texts = [t for p in _real_papers() for t in (p["title"], p["abstract"]) if looks_like_latex(t)]
    assert len(texts) >= 200
    differ = [(_whole(t), latex_to_text(t)) for t in texts if _whole(t) != latex_to_text(t)]
    assert all(before.replace(" ", "") == now.replace(" ", "") for before, now in differ), differ
    assert len(differ) <= 2, differ


def _real_papers() -> list[dict[str, str]]:
    path = PROJECT_ROOT / "bench" / "eval" / "papers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_text_without_latex_is_returned_as_it_is() -> None:
    plain = "Large language models with long context windows store keys & values (~6x less, 50% faster)."
    assert not looks_like_latex(plain)
    assert latex_to_text(plain) is plain


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("50% & #1", r"50\% \& \#1"),
        (r"50\% kept", r"50\% kept"),
        ("$5 and $x$", r"\$5 and $x$"),
        ("~100 and a~b", r"\textasciitilde{}100 and a~b"),
    ],
)
def test_literal_characters_are_escaped_before_parsing(raw: str, escaped: str) -> None:
    assert escape_literals(raw) == escaped


def test_titles_abstracts_authors_and_reasons_read_as_text_in_the_email() -> None:
    paper = _paper(
        1,
        r"$\infty$Bench: $O(n^2)$ attention made \textit{stable}",
        r"We extend attention to $\infty$ context at $O(n^2)$ cost, and it costs $5 and $10 to run.",
        authors=[r"Jos\'e Garc\'ia", "Ana Silva"],
    )
    index = PaperIndex([paper])
    chosen = select(index, ["attention"], candidates=index.all, cap=5)
    out = render_digest(TEMPLATES, replace(CONTEXT, topics=["attention"]), chosen.matches, 0)
    for part in (out.html, " ".join(out.text.split())):  # the text part is wrapped: unwrap it
        assert "∞Bench: O(n²)" in part and "made stable" in part
        assert "to ∞ context at O(n²) cost, and it costs $5 and $10 to run." in part
        assert "José García" in part
        assert "\\infty" not in part and "textit" not in part
    assert "<em>" not in out.html and "<i>" not in out.html  # \textit is plain text, not markup


_PIECES = [*"$\\{}^_%&#~ `'-aZ19<>\n", "\\frac", "\\textit", "\\begin{x}", "\\end{x}", "\\href", "$x$"]
_LATEXISH = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(_LATEXISH)
def test_any_latexish_text_gives_one_line_of_text(raw: str) -> None:
    """Whatever mix of LaTeX's special characters and commands: no exception, a string, one line,
    and text without LaTeX comes back as it is."""
    out = latex_to_text(raw)
    assert isinstance(out, str)
    if looks_like_latex(raw):
        assert "\n" not in out or out == raw
    else:
        assert out == raw


def test_reasons_that_quote_a_title_read_as_text() -> None:
    """The reasons match.py writes quote titles as stored: 'close to your example <title>' and a
    recommended paper's 'like <title>, which you liked' read as text too."""
    paper = _paper(1, "Attention", "About attention.")
    example = Match(paper, ("like:2503.18893",), 1, 0, reasons=(r"close to your example $\infty$Bench: long context",))
    liked = Match(
        _paper(2, "Other", "Other."), (), 0, 0, reasons=(r"like $O(n^2)$ \textit{attention}, which you liked",),
        recommended=True,
    )  # fmt: skip
    out = render_digest(TEMPLATES, replace(CONTEXT, topics=["like:2503.18893"]), [example, liked], 0)
    for part in (out.html, out.text):
        assert "Matched: close to your example ∞Bench: long context" in part
        assert "like O(n²) attention, which you liked" in part
    assert out.subject == "1 new paper on papers like ∞Bench: long context — 30 Nov"
