# A slim, non-root image with the operator installed: `docker build -t airbyte-watch:0.1.0 .`
# BASE is any image with Python 3.11 as `python3` and its venv module: python:3.11-slim by
# default; tests/image/build.sh builds it on a Debian bookworm base made by mmdebstrap.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# A venv at one path works on every base (the base's own site-packages layout differs between
# python:3.11-slim and Debian's python3); pip and setuptools are not needed to run.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install . \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
ENTRYPOINT ["airbyte-watch"]
CMD ["run", "--all-namespaces"]
