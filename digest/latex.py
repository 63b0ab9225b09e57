"""LaTeX in titles, abstracts and author names → plain Unicode text, for display (pylatexenc).

`$\\infty$Bench` reads `∞Bench`, `$O(n^2)$` reads `O(n²)`, `\\textit{stable}` reads `stable`. The
result is always plain text — never markup: templates escape it like any other feed text. Stored
papers keep what the feed said (matching and embedding read that); only what readers see is
converted, once per distinct text.

Feeds also hold text that is not LaTeX at all, so the conversion is guarded: a text with no
backslash and no `$…$` maths is left exactly as it is; `$` counts as maths only by pandoc's rule
(an opening `$` has a non-space on its right, the closing one a non-space on its left and no digit
after it), so "costs $5 and $10" keeps its dollars; `%`, `&`, `#` are the characters they look like,
not a comment, a column and a parameter; `~` before a digit means "about". Whatever the input —
unbalanced braces, unknown commands, a lone `$`, deep nesting — the answer is text: pylatexenc is
tolerant, and when it gives up the text is shown as it came.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from pylatexenc import latexwalker, macrospec
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, SpecialsTextSpec, get_default_latex_context_db

from digest.text import squash

MAX_CHARS = 12_000  # longer text is shown as it came (stored abstracts are clipped to 10,000)
CACHE_SIZE = 20_000  # distinct converted texts kept: a big day's titles and abstracts
# pylatexenc reports every parse error it recovers from at INFO: feed text is not ours to fix.
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

_MATH_SPAN = r"\$\$(?:\\.|[^\\$])+?\$\$|\$(?=[^\s$])(?:\\.|[^\\$])*?(?<=[^\s\\])\$(?!\d)"
_MATH = re.compile(_MATH_SPAN, re.S)
# Left to right: an escape, a maths span (both kept as they are), or a character a plain-text
# writer means literally (escaped for LaTeX).
_TOKEN = re.compile(rf"\\.|{_MATH_SPAN}|[%&#$]|~(?=\d)", re.S)
_UNFILLED = re.compile(r"%(?:\(\d+\))?s")  # a pylatexenc replacement left unfilled
_LITERAL = {"%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "~": r"\textasciitilde{}"}

# Unicode has super- and subscript forms for these; anything else keeps its ^ or _ (`x^T`, `ℝ^(d×d)`).
_SUPERSCRIPT = dict(zip("0123456789+-=()nix*′", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱˣ*′", strict=True))  # RRT^* reads RRT*
_SUBSCRIPT = dict(zip("0123456789+-=()aeijkmnoprstx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢⱼₖₘₙₒₚᵣₛₜₓ", strict=True))


def _script(mark: str, forms: dict[str, str]) -> Any:
    """How `^x` / `_x` read: in maths as super- or subscript characters when Unicode has them all;
    outside maths (`snake_case`) as written."""

    def repl(n: Any, l2tobj: Any) -> str:
        args = n.nodeargd.argnlist if n.nodeargd else []
        text = str(l2tobj.nodelist_to_text([a for a in args if a is not None])).strip()
        if not n.parsing_state.in_math_mode:
            return mark + text
        if text and all(ch in forms for ch in text):
            return "".join(forms[ch] for ch in text)
        return f"{mark}{text}" if len(text) <= 1 else f"{mark}({text})"

    return repl


def _walker_context() -> Any:
    """pylatexenc's parsing rules, plus ^ and _ taking one argument, and \\href, \\url."""
    db = latexwalker.get_default_latex_context_db()
    one = macrospec.MacroStandardArgsParser("{")
    db.add_context_category(
        "digest",
        specials=[macrospec.SpecialsSpec("^", args_parser=one), macrospec.SpecialsSpec("_", args_parser=one)],
        macros=[macrospec.MacroSpec("href", "{{"), macrospec.MacroSpec("url", "{")],
        prepend=True,
    )
    return db


def _text_context() -> Any:
    """pylatexenc's text for each macro, plus scripts, \\href{url}{text} as its text, \\url{u} as u."""
    db = get_default_latex_context_db()
    db.add_context_category(
        "digest",
        specials=[SpecialsTextSpec("^", _script("^", _SUPERSCRIPT)), SpecialsTextSpec("_", _script("_", _SUBSCRIPT))],
        macros=[MacroTextSpec("href", "%(2)s"), MacroTextSpec("url", "%s")],
        prepend=True,
    )
    return db


_WALKER = _walker_context()
_TO_TEXT = LatexNodes2Text(latex_context=_text_context())


def looks_like_latex(text: str) -> bool:
    """Whether a text holds a LaTeX command or `$…$` maths (anything else is shown untouched)."""
    return "\\" in text or ("$" in text and _MATH.search(text) is not None)


def escape_literals(text: str) -> str:
    """The text with the characters a plain-text writer means literally escaped for LaTeX: `%`,
    `&`, `#`, a `$` that opens no maths, `~` before a digit."""

    return _TOKEN.sub(lambda m: _LITERAL.get(m.group(), m.group()), text)


def latex_to_text(text: str) -> str:
    """The text as readers should see it: LaTeX turned into plain Unicode text, on one line; text
    that holds no LaTeX comes back as it is. Never raises."""
    if len(text) > MAX_CHARS or not looks_like_latex(text):
        return text
    return _converted(text)


# Where LaTeX can be: an escape or command, a brace, maths, and what pylatexenc reads as something
# else in text (~ as a space, -- and --- as dashes, `` '' "" as quotes, ?` and !` as ¿ and ¡).
_DELIMITED = r"\\\(.*?\\\)|\\\[.*?\\\]|\\begin\{([^{}]*)\}.*?\\end\{\1\}"  # \(…\), \[…\], environments
_MARK = re.compile(rf"{_DELIMITED}|\\.?|{_MATH_SPAN}|[{{}}~]|--|``|''|\"\"|[?!]`", re.S)
_BRACE = re.compile(r"\\.|[{}]", re.S)
_WORD = re.compile(r"\S+")


def _latex_spans(text: str) -> list[tuple[int, int]]:
    """The stretches of a text that hold its LaTeX: the words that touch a mark or a brace group (to
    its closing brace, or the end), runs of such words joined; the rest of the text is words
    pylatexenc would give back as they are. Linear in the text (one pass over marks and words)."""
    spans = [(m.start(), m.end()) for m in _MARK.finditer(text)]
    depth, opened = 0, 0
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            opened = m.start() if depth == 0 else opened
            depth += 1
        elif m.group() == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append((opened, m.end()))
    if depth:
        spans.append((opened, len(text)))
    spans.sort()
    joined: list[tuple[int, int]] = []
    reach, k = -1, 0  # the furthest end of the spans that start before the current word ends
    for word in _WORD.finditer(text):
        start, end = word.span()
        while k < len(spans) and spans[k][0] < end:
            reach = max(reach, spans[k][1])
            k += 1
        if reach <= start:
            continue  # no LaTeX touches this word
        if joined and text[joined[-1][1] : start].isspace():
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _to_text(latex: str) -> str:
    nodes, _pos, _len = latexwalker.LatexWalker(
        escape_literals(latex), latex_context=_WALKER, tolerant_parsing=True
    ).get_latex_nodes()
    return str(_TO_TEXT.nodelist_to_text(nodes))


@lru_cache(maxsize=CACHE_SIZE)
def _converted(text: str) -> str:
    """Only the stretches that hold LaTeX go through pylatexenc (an abstract with one `$x$` is
    parsed as that word, not as 1,500 characters: several times faster, the same text)."""
    parts, at = [], 0
    try:
        for start, end in _latex_spans(text):
            parts += [text[at:start], _to_text(text[start:end])]
            at = end
        out = squash("".join([*parts, text[at:]]))
    except Exception:  # pylatexenc's tolerance has limits (deep nesting, odd argument shapes)
        return text
    # Nothing left, or a command missing its arguments (`\frac` alone reads "%s/%s"): as it came.
    return text if not out or _UNFILLED.search(out) else out
