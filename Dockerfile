# Tidings as a container image: `docker build -t tidings .` then
#   docker run -p 8443:8443 -v tidings-data:/data tidings
# Settings come from TIDINGS_* env vars (README, "Configuration"); `tidings serve` migrates
# the store before it listens and drains on SIGTERM (docs/deployment.md, "Docker").
#
# BASE is the official Python image users have; the tests build from a local Debian
# bookworm made with debootstrap (no registry there), whose python3 is 3.11 too.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# The official image has its own Python in /usr/local; a bare Debian gets Debian's.
RUN if ! command -v python3 >/dev/null; then \
        apt-get update -q && \
        apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates && \
        rm -rf /var/lib/apt/lists/*; \
    fi
RUN python3 -m venv /opt/tidings
# PEM text of extra CA certificates for pip, for builds behind a TLS-intercepting proxy;
# only this stage sees it.
ARG EXTRA_CA_CERTS=""
# pip trusts the system's CAs plus EXTRA_CA_CERTS.
RUN cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca.pem && \
    printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/ca.pem
ENV PIP_CERT=/tmp/ca.pem
# Dependencies first: this layer is reused while only the source (or README) changes.
# The Python client (tidings-client, which the server depends on and which holds the
# wire protocol) is on no index: it is installed from the repository with them.
COPY clients/python /src/clients/python
COPY pyproject.toml LICENSE /src/
# A stub package: pyproject reads the version from tidings.__version__.
RUN mkdir -p /src/src/tidings && echo '__version__ = "0"' > /src/src/tidings/__init__.py && \
    touch /src/README.md && \
    /opt/tidings/bin/pip install -q /src/clients/python /src && \
    /opt/tidings/bin/pip uninstall -q -y tidings && \
    rm -rf /src/build /src/src
COPY README.md /src/
COPY src /src/src
RUN /opt/tidings/bin/pip install -q --no-deps /src && \
    /opt/tidings/bin/python -m compileall -q /opt/tidings/lib && \
    rm -rf /opt/tidings/bin/pip* /opt/tidings/lib/python3*/site-packages/pip \
           /opt/tidings/lib/python3*/site-packages/setuptools /tmp/ca.pem

FROM ${BASE}
RUN if ! command -v python3 >/dev/null; then \
        apt-get update -q && \
        apt-get install -y -q --no-install-recommends python3 && \
        rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log; \
    fi && \
    groupadd --system --gid 10001 tidings && \
    useradd --system --uid 10001 --gid tidings --home-dir /data --shell /usr/sbin/nologin tidings && \
    mkdir -p /data && chown tidings:tidings /data
COPY --from=build /opt/tidings /opt/tidings
COPY deploy/healthcheck.py /usr/local/bin/tidings-healthcheck
ENV PATH=/opt/tidings/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TIDINGS_HOST=0.0.0.0 \
    TIDINGS_PORT=8443 \
    TIDINGS_DATABASE_URL=sqlite:////data/tidings.db \
    TIDINGS_SHUTDOWN_TIMEOUT=8
# 8 s of drain fits in `docker stop`'s default 10 s grace; give more with
# `docker stop -t` / compose's stop_grace_period and a larger TIDINGS_SHUTDOWN_TIMEOUT.
USER tidings
WORKDIR /data
VOLUME /data
EXPOSE 8443
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "/usr/local/bin/tidings-healthcheck"]
ENTRYPOINT ["tidings", "serve"]
