# syntax=docker/dockerfile:1
# One image for every app service: web (`digest serve`), the Celery worker and beat, `digest init-db`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The code lives in /app, owned by root and read-only for the app user.
WORKDIR /app

# 1. Dependencies only, in their own layer: it is rebuilt only when pyproject.toml changes.
#    tomllib (Python 3.11+) reads [project].dependencies, so the list is never kept twice.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. The source, then the package itself without touching the dependencies. Editable, so the
#    code is imported from /app: digest.config.PROJECT_ROOT is /app and finds email_templates/,
#    and digest/web finds its templates/ and static/ next to it.
COPY . .
RUN pip install --no-deps -e . \
    && python -c "import digest.cli, workers.celery_app"

# A user without a login shell or root rights. Its home is the working directory, so relative
# paths (celerybeat-schedule, an outbox/ when no SMTP is set) are writable there.
RUN useradd --create-home --home-dir /home/digest --uid 10001 --shell /usr/sbin/nologin digest
USER digest
WORKDIR /home/digest

EXPOSE 8000

# No curl in slim images: python's urllib. urlopen raises on a non-2xx answer, so the exit code is 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["digest", "serve", "--host", "0.0.0.0", "--port", "8000"]
