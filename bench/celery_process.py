"""Real Celery processes for the tests and the benchmark: `celery -A workers.celery_app worker|beat`,
configured only through the DIGEST_* environment built from a Settings, with the log in a file.

The one way either of them starts a worker or a beat; the benchmark samples their CPU and memory on
top (bench/celery_run.py), the fault tests kill and restart them (tests/test_faults.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from digest.config import PROJECT_ROOT, Settings


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a child process of ours: this one's without its DIGEST_* variables (a
    child is configured only by what the caller gives it), this checkout first on PYTHONPATH (it
    imports this code, whatever folder it runs in), and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """A child's environment (`child_environment`) with one DIGEST_* variable per field of
    `settings` (so the child's `Settings()` equals it) and `extra`."""
    env = child_environment()
    values = settings.model_dump(mode="json")
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in Settings.model_fields.items():
        value = values[name]
        if value is None:  # unset: the child's default is None too
            continue
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        env[alias or f"{prefix}{name}".upper()] = value if isinstance(value, str) else json.dumps(value)
    env.update(extra)
    return env


@dataclass
class CeleryProcess:
    """A celery worker or beat started as a real OS process in the folder of its log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> CeleryProcess:
        """Start it (the log is appended to: a restarted process keeps its predecessor's lines)."""
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.celery_app", *self.args],
                cwd=self.log.parent, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def children(self) -> list[psutil.Process]:
        """The prefork pool's child processes."""
        found: list[psutil.Process] = psutil.Process(self.pid).children(recursive=False)
        return found

    def tree(self) -> list[psutil.Process]:
        """The main process and all its descendants; empty once it is gone."""
        if self.popen is None:
            return []
        try:
            main = psutil.Process(self.popen.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def ready(self) -> bool:
        """Whether the worker says it is ready; an error with the log's tail if it exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.text()[-3000:]}")
        return " ready." in self.text()

    def stop(self, *, cold: bool = False, timeout: float = 30) -> None:
        """A warm shutdown (SIGTERM: the running task finishes), or a cold one (SIGQUIT: at once);
        SIGKILL for the whole tree if it lingers past `timeout`."""
        if not self.running():
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGQUIT if cold else signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for proc in self.tree()[1:]:
                proc.kill()
            self.popen.kill()
            self.popen.wait(timeout=10)

    def text(self) -> str:
        """The log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker(settings: Settings, name: str, folder: Path, *, concurrency: int = 1, **extra: str) -> CeleryProcess:
    """A worker (not yet started) consuming `settings.celery_queue`, logging to FOLDER/NAME.log."""
    queue = settings.celery_queue
    args = ["worker", "-Q", queue, "-c", str(concurrency), "--loglevel=INFO"]
    args += ["--without-mingle", "--without-gossip", "-n", f"{name}-{queue}@%h"]
    return CeleryProcess(name, args, environment(settings, **extra), folder / f"{name}.log")


def beat(settings: Settings, name: str, folder: Path, **extra: str) -> CeleryProcess:
    """A beat process (not yet started; RedBeat: only the one holding the lock schedules)."""
    return CeleryProcess(name, ["beat", "--loglevel=DEBUG"], environment(settings, **extra), folder / f"{name}.log")
