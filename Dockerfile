# Time Machine server image. In production point it at managed stores:
#   docker run -e TM_DATABASE_URL=postgresql://... -e TM_S3_ENDPOINT_URL=https://... \
#              -e TM_AUTH_MODE=jwt -e TM_JWT_SECRET=... -p 50051:50051 timemachine
# Without them it runs the embedded PostgreSQL and S3 in TM_DATA_DIR (mount a volume there).
# It listens on every interface, so it will not start trusting x-tenant-id headers
# (TM_AUTH_MODE=metadata) unless clients use mutual TLS (TM_TLS_CLIENT_CA_FILE) or a
# gateway or mesh in front sets those headers and you say so: TM_TRUST_IDENTITY_HEADERS=1.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TM_GRPC_ADDRESS=0.0.0.0:50051 \
    TM_DATA_DIR=/data

WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY proto ./proto
COPY generated ./generated
COPY migrations ./migrations
COPY service ./service
COPY server ./server

RUN useradd --system --uid 10001 --home /app timemachine && mkdir -p /data && chown 10001 /data
USER 10001
VOLUME ["/data"]
EXPOSE 50051
STOPSIGNAL SIGTERM
# The gRPC health status of the server in this container (server/probe.py): unhealthy while
# PostgreSQL or S3 has been unreachable for TM_HEALTH_GRACE_SECONDS. It speaks plaintext: with
# TLS on, use your orchestrator's gRPC probe with the right certificates instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s CMD ["python", "-m", "server.probe"]
CMD ["python", "-m", "server"]
