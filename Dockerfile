# syntax=docker/dockerfile:1
#
# meshwarden admission webhook.
#   docker build -t meshwarden:0.1.0 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Two stages on the same pinned base: the first installs the locked, hash-checked
# dependencies and the meshwarden wheel into a virtualenv (binary wheels only, so no
# compiler is needed anywhere); the second copies just that virtualenv. The final image
# has no pip cache, no build tools and no pip in the application environment.
# For reproducible builds, pin the base by digest as well: python:3.11.11-slim-bookworm@sha256:...

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The application environment is created without pip; the base image's pip installs
# into it from outside.
RUN python -m venv --without-pip /opt/meshwarden
COPY deploy/requirements.lock ./
RUN pip --python /opt/meshwarden/bin/python install \
        --require-hashes --only-binary=:all: --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY webhook ./webhook
COPY policies ./policies
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip --python /opt/meshwarden/bin/python install --no-deps /wheels/*.whl \
    && pip --python /opt/meshwarden/bin/python check

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="meshwarden" \
      org.opencontainers.image.description="Admission policy server for Istio networking objects: egress rules, injected defaults, audit log" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# A numeric user, so the kubelet can verify runAsNonRoot without reading /etc/passwd;
# the passwd entry is there for tools that look the user up.
RUN groupadd --system --gid 65532 meshwarden \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin meshwarden
COPY --from=build /opt/meshwarden /opt/meshwarden
ENV PATH=/opt/meshwarden/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8443
# No HEALTHCHECK: in Kubernetes the readiness and liveness probes on /readyz and /healthz
# do that job (deploy/base/deployment.yaml).
ENTRYPOINT ["meshwarden", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8443", "--cert-dir", "/etc/meshwarden/tls"]
