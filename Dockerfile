# Slim, non-root image of svc.  `docker build -t svc . && docker run -p 8000:8000 svc`;
# a PaaS builds it as it is and sets PORT (docs/deploy.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# 1. The pinned dependencies, in a layer of their own: it is rebuilt only when the lock
#    changes, not on every code edit.  Hashes are checked, nothing unpinned is fetched.
#    (requirements.lock is generated from setup.cfg: `bash .ci/lock`.)
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# 2. svc itself, built with the locked setuptools and installing no other package.
#    (README.md: setup.cfg reads it as the package's long description.)
COPY setup.cfg pyproject.toml README.md ./
COPY svc ./svc
COPY plugins/svc_memory ./plugins/svc_memory
COPY plugins/svc_postgres ./plugins/svc_postgres
COPY plugins/svc_redis ./plugins/svc_redis
RUN pip install --no-deps --no-build-isolation . && pip check

# 3. Run as a user that owns nothing it could rewrite.
RUN useradd --system --uid 10001 --no-create-home svc
USER 10001

ENV PORT=8000 HOST=0.0.0.0
EXPOSE 8000
# Liveness: GET / answers 200 (readiness, /health/ready, also needs the database).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "svc"]
