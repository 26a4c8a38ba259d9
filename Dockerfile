# The Escalator worker image: `docker compose up` builds it for the `worker` service.
# Runs `python worker.py`, configured by TEMPORAL_* and SMTP_* environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system escalator \
    && useradd --system --gid escalator --home-dir /app --no-create-home escalator

WORKDIR /app

# The project and its runtime dependencies only (no dev extras). The source stays in
# /app as well, owned by root and read-only for the worker: `python worker.py`
# imports the packages from here, and escalator/adapters/policy_files.py finds policies/
# next to them.
COPY . /app
#
# The sandbox re-imports the workflow module for every case it loads: with the
# bytecode compiled here (the worker cannot write to /app), that is a quick load
# instead of a compile.
RUN pip install --no-cache-dir . \
    && python -m compileall -q /app/workflows /app/escalator /app/activities

USER escalator

# Exec form, so the worker is PID 1 and gets SIGTERM from `docker compose stop`:
# it finishes in-flight tasks and exits.
CMD ["python", "worker.py"]
