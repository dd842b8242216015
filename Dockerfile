# Slim, non-root image of svc.  `docker run -p 8000:8000 svc`; a PaaS sets PORT.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Metadata first, so editing code does not re-install dependencies.
COPY setup.cfg pyproject.toml README.md ./
COPY svc ./svc
COPY plugins ./plugins
RUN pip install . && useradd --system --uid 10001 --no-create-home svc

USER svc
ENV PORT=8000 HOST=0.0.0.0
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/', timeout=2)"
CMD ["python", "-m", "svc"]
