# The mlops-stream image: `docker build -t mlops-task . && docker run --rm mlops-task` runs the job on the bundled data.
# BASE is the official slim Python image; a builder that cannot pull it passes a local stand-in
# (see scripts/container-smoke.sh).
ARG BASE=python:3.11-slim

# Build stage: the checkout becomes a wheel, installed with its dependencies into a venv the runtime stage copies; the
# serve extra (prometheus_client, under 1 MB) comes along, so `--metrics-port` works in the image.
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
# pip reaches its index the way the builder's host does: an optional pip config (index, credentials) and CA bundle (an
# intercepting proxy's) arrive as build secrets, so neither is written into a layer. `python3 -m venv` rather than a
# fixed interpreter path, because python:*-slim keeps python3 in /usr/local/bin and a Debian base in /usr/bin.
RUN --mount=type=secret,id=pipconf --mount=type=secret,id=cacert \
    set -eu; \
    if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi; \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .; \
    set -- /wheels/*.whl; \
    /opt/venv/bin/pip install --no-cache-dir "$1[serve]"; \
    /opt/venv/bin/pip uninstall --yes pip setuptools; \
    /opt/venv/bin/mlops-stream --version

# Runtime stage: the base, the venv and the bundled data; no compilers, no pip in the venv, no build tree.
FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home --home-dir /app --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY data.csv config.yaml ./
USER 10001:10001
# Exec form: mlops-stream is PID 1 and receives `docker stop`'s SIGTERM itself, and its exit code is the container's.
ENTRYPOINT ["mlops-stream"]
CMD ["--input", "data.csv", "--config", "config.yaml", "--output", "metrics.json", "--log-file", "run.log"]
