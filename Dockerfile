# ocs server image: slim, non-root, `ocs serve` as entry point.
# Point it at your Redis with OCS_REDIS__URL=redis://host:6379/0; without it
# the image runs its own embedded server with data under /var/lib/ocs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    OCS_REDIS__DATA_DIR=/var/lib/ocs/redis \
    OCS_LOGGING__FORMAT=json \
    OCS_DIAMETER__LISTEN='["0.0.0.0", "::"]' \
    OCS_RADIUS__LISTEN='["0.0.0.0", "::"]' \
    OCS_METRICS__HOST=0.0.0.0

WORKDIR /opt/ocs
COPY pyproject.toml README.md ./
COPY ocs ./ocs
COPY protocols ./protocols
COPY loadtest ./loadtest
RUN pip install --no-cache-dir . \
    && useradd --system --home /var/lib/ocs --create-home ocs
COPY config ./config
COPY policies ./policies

USER ocs
EXPOSE 3868 1812/udp 1813/udp 9464
ENTRYPOINT ["ocs", "--config", "/opt/ocs/config/ocs.yaml"]
CMD ["serve"]
