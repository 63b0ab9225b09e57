"""Postfix's `smtp-sink` on a loopback port, and `smtp-source` against it as the machine's ceiling.

Both come with Debian's `postfix` package. When they are missing and we are root, the package is
installed without ever starting the postfix daemon: debconf is told "No configuration", and a
`policy-rc.d` that refuses every service start is in place during the install (a temporary one,
removed afterwards, when the machine has none of its own).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.records import Ceiling

POLICY_RC = Path("/usr/sbin/policy-rc.d")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin")


class SmtpToolsError(RuntimeError):
    """smtp-sink / smtp-source cannot be found or installed."""


def which(tool: str) -> str | None:
    """The path of a Postfix tool (they live in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which(tool)
    if found:
        return found
    for folder in SBIN:
        candidate = Path(folder) / tool
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def postfix_masters() -> list[int]:
    """Pids of running postfix `master` daemons (there must be none: we never start postfix)."""
    found = []
    for proc in psutil.process_iter(["name", "exe", "cmdline"]):
        try:
            exe = proc.info.get("exe") or ""
            cmd = " ".join(proc.info.get("cmdline") or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if ("postfix" in exe and exe.endswith("/master")) or cmd.startswith("/usr/lib/postfix/sbin/master"):
            found.append(proc.pid)
    return found


def ensure_tools(log: list[str]) -> dict[str, str]:
    """Paths of smtp-sink and smtp-source, installing Debian's postfix (never started) if needed."""
    sink, source = which("smtp-sink"), which("smtp-source")
    if sink and source:
        return {"smtp-sink": sink, "smtp-source": source, "installed_now": "no"}
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SmtpToolsError(
            "smtp-sink/smtp-source are missing: install Debian's `postfix` package (as root: "
            "DEBIAN_FRONTEND=noninteractive apt-get install -y postfix, with a policy-rc.d that exits 101)"
        )
    _install_postfix(log)
    sink, source = which("smtp-sink"), which("smtp-source")
    if not (sink and source):
        raise SmtpToolsError("postfix installed but smtp-sink/smtp-source are still missing")
    return {"smtp-sink": sink, "smtp-source": source, "installed_now": "yes"}


def _install_postfix(log: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=False,
        env=env,
    )
    created_policy = False
    if not POLICY_RC.exists():
        POLICY_RC.write_text("#!/bin/sh\n# temporary, from paper-digest's bench: start no service\nexit 101\n")
        POLICY_RC.chmod(0o755)
        created_policy = True
        log.append("wrote a temporary /usr/sbin/policy-rc.d (exit 101)")
    try:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"]
        log.append("installing Debian's postfix for smtp-sink/smtp-source (the daemon is never started)")
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
            done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SmtpToolsError(f"apt-get install postfix failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    finally:
        if created_policy:
            POLICY_RC.unlink(missing_ok=True)
            log.append("removed the temporary policy-rc.d")
    masters = postfix_masters()
    if masters:
        # Only possible if something started the daemon despite policy-rc.d: stop what the install began.
        log.append(f"a postfix master was running after the install (pids {masters}): stopping it")
        subprocess.run(["postfix", "stop"], capture_output=True, check=False)
    else:
        log.append("checked: no postfix master process runs")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_COUNTER = re.compile(rb"mesg=(\d+)")


@dataclass
class Sink:
    """A running smtp-sink: it accepts every message and throws it away (and counts them)."""

    binary: str
    folder: Path
    port: int = 0
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def counter_file(self) -> Path:
        return self.folder / "smtp-sink.out"

    def start(self) -> Sink:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [self.binary, "-c", "-4"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # required as root: it drops privileges after binding
        args += [f"127.0.0.1:{self.port}", "1024"]
        with self.counter_file.open("wb") as out:
            self.popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise SmtpToolsError(f"smtp-sink did not answer on port {self.port}: {self.counter_file.read_text()}")

    def received(self) -> int:
        """Messages received so far (smtp-sink's own running counter)."""
        found = _COUNTER.findall(self.counter_file.read_bytes()[-4096:])
        return int(found[-1]) if found else 0

    def wait_received(self, at_least: int, timeout: float = 5.0) -> int:
        """The counter once it reached `at_least` (it is written when a transaction ends)."""
        deadline = time.monotonic() + timeout
        while (n := self.received()) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        return n

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.popen = None


def ceiling(source: str, sink: Sink, message: bytes, messages: int, sessions: int = 16, runs: int = 3) -> Ceiling:
    """smtp-source → the same sink: `sessions` parallel sessions, each reusing its connection (as
    our transport does), sending `message` (a real digest) `messages` times; the median of `runs`."""
    with tempfile.NamedTemporaryFile("wb", suffix=".eml", delete=False) as f:
        # smtp-source appends CRLF to each line and dot-stuffs: give it the message with bare LFs.
        f.write(message.replace(b"\r\n", b"\n"))
        path = f.name
    try:
        rates = [_source_rate(source, sink, path, messages, sessions) for _ in range(runs)]
    finally:
        os.unlink(path)
    return Ceiling(
        msg_per_s=round(statistics.median(rates), 1),
        runs_msg_per_s=[round(r, 1) for r in rates],
        sessions=sessions,
        messages_per_run=messages,
        message_bytes=len(message),
        connection_reuse=True,
    )


def _source_rate(source: str, sink: Sink, path: str, messages: int, sessions: int) -> float:
    """One smtp-source run of `messages` messages: messages per second, checked against the sink's count."""
    before = sink.received()
    args = [source, "-d", "-s", str(sessions), "-m", str(messages), "-F", path]
    args += ["-f", "digest@example.org", "-t", "reader@example.org", f"127.0.0.1:{sink.port}"]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SmtpToolsError(f"smtp-source failed: {done.stderr[-1000:]}")
    got = sink.wait_received(before + messages) - before
    if got < messages:
        raise SmtpToolsError(f"smtp-sink counted {got} of {messages} messages from smtp-source")
    return messages / elapsed
