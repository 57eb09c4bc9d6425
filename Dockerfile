# ocs image: `ocs serve` by default, `ocs export` as its own container with
# the command `export` (see deploy/compose.yaml).
#
# Two stages: the build stage makes a virtual environment with ocs and its
# dependencies; the runtime stage copies only that environment, the
# configuration and the policies. Nothing in it runs as root, and nothing
# under /opt/ocs is writable by the process: every state path of the
# configuration is relative (var/redis, var/diameter, var/export), resolved
# against /opt/ocs (the directory holding config/), and /opt/ocs/var is a
# link to the /var/lib/ocs volume. tests/integration/ops/test_image_layout.py
# rebuilds this layout without Docker (non-root user, read-only tree) and
# starts the server in it.
#
# Point it at your Redis with OCS_REDIS__URL=redis://host:6379/0 (rediss://
# for TLS); without it the image runs its own embedded Valkey with its data
# in the volume. Any other key: OCS_<SECTION>__<KEY>. Your own configuration
# and policies: mount them at /opt/ocs/config/ocs.yaml and /opt/ocs/policies.

# The base image, pinned to one Python patch release and Debian release
# (add @sha256:<digest> from your registry to pin the exact bytes).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ocs ./ocs
COPY protocols ./protocols
COPY loadtest ./loadtest
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    OCS_LOGGING__FORMAT=json \
    OCS_DIAMETER__LISTEN='["0.0.0.0", "::"]' \
    OCS_RADIUS__LISTEN='["0.0.0.0", "::"]' \
    OCS_METRICS__HOST=0.0.0.0
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ocs --shell /usr/sbin/nologin ocs \
    && install -d -o ocs -g ocs -m 0750 /var/lib/ocs \
    && install -d -m 0755 /opt/ocs \
    && ln -s /var/lib/ocs /opt/ocs/var
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/ocs
COPY config ./config
COPY policies ./policies

USER ocs
VOLUME ["/var/lib/ocs"]
# Diameter, RADIUS auth and accounting, the server's metrics/probes, the exporter's.
EXPOSE 3868 1812/udp 1813/udp 9464 9465
# Liveness only: a bad policy file or an unreachable Redis is not cured by a
# restart (/readyz says those; see the README's operations section).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9464/livez', timeout=4).status != 200)"]
ENTRYPOINT ["ocs", "--config", "/opt/ocs/config/ocs.yaml"]
CMD ["serve"]
