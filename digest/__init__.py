"""Paper Digest: a daily research-paper digest by email (README.md maps the modules)."""

import os

# One BLAS thread per process, set before numpy is first imported: the service scales by processes
# (a Celery worker per core), and OpenBLAS's own threads then only fight the other processes for
# the same cores — measured 4x slower matching on a busy 2-core machine. An operator's value wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
