# The Klamm image. By default a single-node broker: `klamm standalone` on port 9092, data in
# the /data volume. The same image runs the coordination service and cluster brokers (see
# docker-compose.yml), by giving another command.
#   docker build -t klamm .
#   docker run -d --name klamm -p 9092:9092 -v klamm-data:/data klamm
#
# Build arguments (all optional):
#   BASE_IMAGE        A Python 3.11 image with python, venv and pip (default python:3.11-slim).
#                     Without registry access, build one with docker/build-base-image.sh and
#                     pass --build-arg BASE_IMAGE=klamm-base:bookworm.
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST
#                     A package index (mirror) for pip; empty means PyPI. They exist in the
#                     build stage only; nothing of them reaches the runtime image.
ARG BASE_IMAGE=python:3.11-slim

# Build stage: install Klamm and its dependencies into a virtualenv. Every dependency ships
# binary wheels for CPython 3.11 (amd64 and arm64), so no compiler is needed.
FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY broker ./broker
COPY client ./client
COPY protocol ./protocol
COPY zk ./zk
# An empty PIP_* variable is unset so that pip keeps its defaults.
RUN for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do \
        eval "[ -n \"\$$v\" ]" || unset "$v"; \
    done \
    && python -m venv /opt/klamm \
    && /opt/klamm/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/klamm/bin/pip uninstall --yes pip setuptools

# Runtime stage: the virtualenv only (no sources, build output or pip caches), run as a
# non-root user.
FROM ${BASE_IMAGE}
COPY --from=build /opt/klamm /opt/klamm
ENV PATH=/opt/klamm/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 klamm \
    && useradd --system --uid 10001 --gid klamm --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin klamm \
    && mkdir /data && chown klamm:klamm /data

USER klamm
WORKDIR /data
VOLUME /data
EXPOSE 9092
# A metadata round trip over the Kafka protocol: fails if the port is closed or the event loop
# is stuck. It talks only to the bootstrap address, so it works whatever advertised.host is.
# (docker-compose.yml gives each cluster service its own check.)
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD klamm topics list -b 127.0.0.1:9092 > /dev/null || exit 1
# SIGTERM (docker stop) flushes and checkpoints every log before exiting with status 0; a
# cluster broker first moves its partition leaderships to the other brokers.
STOPSIGNAL SIGTERM
ENTRYPOINT ["klamm"]
# advertised.host is the host name the broker hands to clients in metadata responses; they
# connect to it after bootstrapping. "localhost" suits clients on the Docker host with
# -p 9092:9092; other containers or machines need a name they can reach (see README).
CMD ["standalone", "--listen", "0.0.0.0:9092", "--data-dir", "/data", \
     "--override", "advertised.host=localhost"]
