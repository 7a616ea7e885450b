# syntax=docker/dockerfile:1
# The Grantline broker image: `grantline serve` as a non-root user, against an external
# Redis/Valkey, Vault/OpenBao and identity issuer (README, "Deploying").
#
#   docker build -t grantline .
#
# Two stages: the builder makes Grantline's wheel and installs it with its dependencies into
# a virtual environment (pinned by constraints.txt); the runtime copies that environment
# alone onto a fresh slim Python, with no compiler, no pip and no source tree.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/grantline \
    && /opt/grantline/bin/pip install --constraint constraints.txt /dist/grantline-*.whl \
    && /opt/grantline/bin/pip uninstall --yes pip setuptools wheel \
    && /opt/grantline/bin/python -m compileall -q /opt/grantline/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="grantline" \
      org.opencontainers.image.description="Just-in-time access broker for non-human identities" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid (10001), so that volumes, Kubernetes securityContext and file modes agree.
RUN groupadd --system --gid 10001 grantline \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/grantline --shell /usr/sbin/nologin grantline \
    && install --directory --owner=10001 --group=10001 --mode=0700 /var/lib/grantline \
    && install --directory --owner=10001 --group=10001 --mode=0755 /srv/grantline/bundles

COPY --from=builder /opt/grantline /opt/grantline
# The shipped policy; mount your own over it or point GRANTLINE_POLICIES elsewhere.
COPY --chown=root:root policies /opt/grantline/policies
# /srv/grantline/bundles: where `grantline policy bundle` writes OPA bundles for an OPA beside
# the broker (deploy/compose.yaml); a volume mounted there starts owned by the broker's user.

# Container defaults. Nothing embedded: the store (GRANTLINE_REDIS_URL) and the identity
# issuers (GRANTLINE_TRUSTED_ISSUERS) must be given, or `serve` refuses to start (exit 4).
# GRANTLINE_HOME holds the signing keys: every replica must see the same ones (a shared
# volume, or a Kubernetes Secret; deploy/README.md).
ENV PATH=/opt/grantline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GRANTLINE_HOME=/var/lib/grantline \
    GRANTLINE_POLICIES=/opt/grantline/policies \
    GRANTLINE_HOST=0.0.0.0 \
    GRANTLINE_PORT=8400 \
    GRANTLINE_DEV_ISSUER=false \
    GRANTLINE_EMBEDDED_STORE=false \
    GRANTLINE_VAULT_DEV=false

USER 10001:10001
WORKDIR /var/lib/grantline
EXPOSE 8400

# Liveness of the process; readiness (store, signer, policy) is /readyz, for orchestrators.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('GRANTLINE_PORT', '8400'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["grantline"]
CMD ["serve"]
