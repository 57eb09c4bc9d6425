# ocs server image: slim, non-root, `ocs serve` as entry point.
# Point it at your Redis with OCS_REDIS__URL=redis://host:6379/0 (or
# rediss:// for TLS); without it the image runs its own embedded Valkey with
# its data under /var/lib/ocs/redis (mount a volume there to keep it).
# Any other key: OCS_<SECTION>__<KEY>, e.g. OCS_LOGGING__LEVEL=debug.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OCS_REDIS__DATA_DIR=/var/lib/ocs/redis \
    OCS_LOGGING__FORMAT=json \
    OCS_DIAMETER__LISTEN='["0.0.0.0", "::"]' \
    OCS_RADIUS__LISTEN='["0.0.0.0", "::"]' \
    OCS_METRICS__HOST=0.0.0.0 \
    OCS_EXPORT__OUTPUT_DIR=/var/lib/ocs/export

WORKDIR /opt/ocs
# Dependencies and code first, configuration last: editing config/ or
# policies/ does not reinstall the package.
COPY pyproject.toml README.md ./
COPY ocs ./ocs
COPY protocols ./protocols
COPY loadtest ./loadtest
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/ocs --create-home --shell /usr/sbin/nologin ocs
COPY config ./config
COPY policies ./policies

USER ocs
VOLUME ["/var/lib/ocs"]
EXPOSE 3868 1812/udp 1813/udp 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9464/livez', timeout=4).status != 200)"]
ENTRYPOINT ["ocs", "--config", "/opt/ocs/config/ocs.yaml"]
CMD ["serve"]
