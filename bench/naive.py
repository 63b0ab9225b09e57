"""The naive baseline: the same sample the plain way — Jinja over the templates as they were before
any speed work (bench/naive_templates), premailer on every email, a stdlib EmailMessage, one smtplib
connection, no work reused. Deliberately apart from the pipeline's own composition."""

from __future__ import annotations

import email.policy
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bench.measure import Clock, peak_rss_mb
from bench.records import NaiveConfig, NaiveResult
from bench.sample import Sample, digest_sample
from digest import compose
from digest.compose import render_for
from digest.config import Settings
from digest.db import make_engine
from digest.match import PaperIndex, annotate
from digest.mime import envelope_sender
from digest.models import Delivery, Subscriber
from digest.render import DigestContext, paper_view, subject_line, subject_topics, topic_label
from digest.schedule import zone

NAIVE_TEMPLATES = Path(__file__).resolve().parent / "naive_templates"


def _renders(settings: Settings, sub: Subscriber, row: Delivery, index: PaperIndex) -> bool:
    try:
        render_for(settings, sub, row, index)
    except Exception:
        return False
    return True


class _NaiveEmail(NamedTuple):
    ctx: DigestContext
    subject: str
    html: str
    text: str


def _naive_templates() -> Environment:
    """The digest template as it was before any speed work, frozen in bench/naive_templates."""
    return Environment(
        loader=FileSystemLoader(str(NAIVE_TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html", "xml"), disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _premailer(html: str) -> str:
    """CSS inlined into every element, the usual way: premailer on the whole email."""
    import premailer  # only this stage's process pays for importing it

    return str(
        premailer.Premailer(
            html,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            strip_important=False,
            cssutils_logging_level="CRITICAL",
        ).transform()
    )


@dataclass
class _Naive:
    """The naive way, one email at a time with no work reused, each step's time kept apart."""

    settings: Settings
    index: PaperIndex
    templates: Environment
    steps: dict[str, Clock] = field(
        default_factory=lambda: {k: Clock() for k in ("render", "premailer", "mime", "smtp")}
    )

    def render(self, sub: Subscriber, row: Delivery) -> _NaiveEmail:
        """Plain Jinja over the frozen templates."""
        urls = compose.links(self.settings, sub, row.created_at)  # the naive email has no feedback links
        ctx = compose.context(self.settings, sub, row.created_at.astimezone(zone(sub.timezone)), urls)
        found = annotate(self.index, sub.topics, row.paper_ids, row.trending_count)
        subject = subject_line(len(found) + row.more_count, subject_topics(ctx.topics, found), ctx.date)
        values = {
            "subject": subject,
            "papers": [paper_view(m) for m in found],
            "more": row.more_count,
            "ctx": ctx,
            "topics": [topic_label(t) for t in ctx.topics],
            "date_label": f"{ctx.date:%A} {ctx.date.day} {ctx.date:%B %Y}",
        }
        html = self.templates.get_template("digest.html").render(values)
        return _NaiveEmail(ctx, subject, html, self.templates.get_template("digest.txt").render(values))

    def mime(self, sub: Subscriber, row: Delivery, made: _NaiveEmail) -> bytes:
        """The stdlib EmailMessage: quoted-printable text and HTML."""
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = self.settings.from_address
        msg["To"] = sub.email
        msg["Subject"] = made.subject
        msg["Date"] = format_datetime(row.created_at)
        msg["Message-ID"] = row.message_id
        msg["List-Unsubscribe"] = f"<{made.ctx.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(made.text, cte="quoted-printable")
        msg.add_alternative(made.html, subtype="html", cte="quoted-printable")
        return msg.as_bytes()

    def message(self, sub: Subscriber, row: Delivery) -> bytes:
        with self.steps["render"].run():
            made = self.render(sub, row)
        with self.steps["premailer"].run():
            made = made._replace(html=_premailer(made.html))
        with self.steps["mime"].run():
            return self.mime(sub, row, made)

    def send_all(self, sample: Sample, sender: str) -> int:
        """Every email of the sample over one smtplib connection; how many were sent."""
        assert self.settings.smtp is not None
        sent = 0
        smtp = smtplib.SMTP(self.settings.smtp.host, self.settings.smtp.port, timeout=30)
        try:
            for sub, row in sample:
                payload = self.message(sub, row)
                with self.steps["smtp"].run():
                    smtp.sendmail(sender, [sub.email], payload)
                    sent += 1
            smtp.quit()
        finally:
            smtp.close()
        return sent


def stage_naive(cfg: NaiveConfig) -> NaiveResult:
    """The naive baseline on a sample: premailer.transform on every rendered email, a stdlib
    EmailMessage (quoted-printable text + HTML), one smtplib connection, no work reused."""
    settings = cfg.setup.settings()
    engine = make_engine(settings.database_url)
    index, sample = digest_sample(settings, engine, cfg.setup.now, cfg.sample)
    sample = [(sub, row) for sub, row in sample if _renders(settings, sub, row, index)]
    naive = _Naive(settings, index, _naive_templates())
    sender = envelope_sender(settings.from_address)
    total = Clock()
    with total.run():
        sent = naive.send_all(sample, sender)
    engine.dispose()
    return NaiveResult(
        digests=sent,
        per_s=round(sent / total.wall, 2),
        wall_ms_each=round(1000 * total.wall / sent, 2),
        cpu_ms_each=round(1000 * total.cpu / sent, 2),
        steps_ms_each={k: round(1000 * c.wall / sent, 2) for k, c in naive.steps.items()},
        steps_cpu_ms_each={k: round(1000 * c.cpu / sent, 2) for k, c in naive.steps.items()},
        peak_rss_mb=peak_rss_mb(),
    )
