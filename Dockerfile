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
COPY pyproject.toml README.md docker/requirements.py ./

# Dependencies in their own layer, read from pyproject.toml: a code change reinstalls nothing.
FROM build-base AS build-serve
RUN python requirements.py pyproject.toml > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY app ./app
COPY training ./training
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/python -c "import app.main, sys; assert 'tensorflow' not in sys.modules"

FROM build-base AS build-full
RUN python requirements.py pyproject.toml train > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY app ./app
COPY training ./training
RUN /opt/venv/bin/pip install --no-deps . \
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
    PORT=8000
WORKDIR /app
EXPOSE 8000
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
