# The one image behind every Periodic service in compose.yaml: web, workers and beats differ
# only by their command. Slim Python 3.11, dependencies in their own cached layer, non-root.
# `nox -s images` builds it FROM its own Debian-built Python where no registry is reachable.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PERIODIC_SETTINGS=/app/settings.toml \
    PYTHONPATH=/app

RUN groupadd --system --gid 10001 periodic \
 && useradd --system --uid 10001 --gid periodic --home-dir /app --shell /usr/sbin/nologin periodic

WORKDIR /app

# Dependency layer: rebuilt only when pyproject.toml changes, not on every code edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The code itself (see .dockerignore for what stays out). `pip install .` installs the library
# (`scheduling`); the reference service (`project/`) runs from /app, on PYTHONPATH.
COPY README.md settings.toml ./
COPY scheduling ./scheduling
COPY project ./project
RUN pip install --no-deps . \
 && mkdir -p /app/var \
 && chown periodic:periodic /app/var

USER periodic:periodic
EXPOSE 8000
CMD ["gunicorn", "project.app:create_app()", "--bind", "0.0.0.0:8000"]
