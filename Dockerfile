# custpulse worker image: `docker build -t custpulse .` then `docker run custpulse worker`.
# Every dependency ships a manylinux wheel for CPython 3.11, so the slim image needs no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build from a copy of the repository (see .dockerignore for what stays out).
WORKDIR /src
COPY . .
RUN pip install . \
    && useradd --create-home --uid 10001 custpulse \
    && install -d -o custpulse -g custpulse /var/lib/custpulse

# Run unprivileged, from a directory the worker may write to (Faust keeps its data dir in
# the working directory).
USER custpulse
WORKDIR /var/lib/custpulse

# Prometheus metrics, when CUSTPULSE_METRICS_PORT=9108.
EXPOSE 9108

ENTRYPOINT ["custpulse"]
CMD ["worker"]
