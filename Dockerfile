# Two images from one file:
#   serve (the default target): the service with the LiteRT runtime only; no TensorFlow.
#     docker build -t tabserve:serve .
#   full: TensorFlow as well, for training (`python -m training`) and MODEL_RUNTIME=savedmodel.
#     docker build --target full -t tabserve:full .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies in their own layer, from the lock (requirements/, every package pinned and
# hash-checked; scripts/lock.sh writes it from pyproject.toml): a code change reinstalls nothing.
# The project then builds with the locked setuptools, without fetching a build backend.
FROM build-base AS build-serve
COPY requirements/serve.txt requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY training ./training
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
 && /opt/venv/bin/python -c "import app.main, sys; assert 'tensorflow' not in sys.modules"

FROM build-base AS build-full
COPY requirements/train.txt requirements.txt
RUN /opt/venv/bin/pip install --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY training ./training
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
 && /opt/venv/bin/python -c "import app.main, training.cli"

FROM ${PYTHON_IMAGE} AS runtime-base
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app/models \
 && chown app:app /app/models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KERAS_HOME=/tmp/.keras \
    MODEL_DIR=/app/models \
    PORT=8000 \
    GRPC_PORT=8081 \
    WORKERS=1
WORKDIR /app
EXPOSE 8000 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "app.healthcheck"]
CMD ["python", "-m", "app"]

FROM runtime-base AS full
COPY --from=build-full /opt/venv /opt/venv
COPY docker/train-as-owner.sh /usr/local/bin/train-as-owner
USER app

FROM runtime-base AS serve
COPY --from=build-serve /opt/venv /opt/venv
USER app
