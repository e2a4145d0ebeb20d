# syntax=docker/dockerfile:1
# LoyalNest Core image: `docker build -t core:latest .` (docs/runbook.md, README "Deploy").
# Stage 1 builds every wheel with the compilers; stage 2 has only the interpreter, the venv and the
# source tree. The service reads migrations/, avro/ and schema.graphql next to its packages
# (core_app/settings.py REPO_ROOT), so the project is installed editable from /app in both stages.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p core_app agents tables views \
    && touch core_app/__init__.py agents/__init__.py tables/__init__.py views/__init__.py \
    && pip install --upgrade pip==25.3 \
    && pip install .
COPY core_app ./core_app
COPY agents ./agents
COPY tables ./tables
COPY views ./views
COPY migrations ./migrations
COPY avro ./avro
COPY schema.graphql ./
RUN pip uninstall -y loyalnest-core && pip install --no-deps -e . \
    && python -m compileall -q /app /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
# tini forwards SIGTERM to the worker (which then leaves its consumer group cleanly) and reaps zombies.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 core \
    && useradd --system --uid 10001 --gid core --home-dir /app --no-create-home core \
    && mkdir -p /var/lib/core \
    && chown core:core /var/lib/core
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CORE_ENV=production \
    DATA_DIR=/var/lib/core \
    HTTP_PORT=8080 \
    GRPC_PORT=50051
WORKDIR /app
USER 10001:10001
VOLUME ["/var/lib/core"]
EXPOSE 8080 50051
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8080') + '/health', timeout=2)"]
ENTRYPOINT ["tini", "--", "core"]
CMD ["worker"]
