# One image for training and serving: `python -m app` serves (the default command),
# `python -m training` trains. Build: docker build -t tabserve .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
# Dependencies in their own layer, read from pyproject.toml: a code change does not
# reinstall TensorFlow.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['train']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt
COPY app ./app
COPY training ./training
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/python -c "import app.main, training.cli"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app/models \
 && chown app:app /app/models
COPY --from=build /opt/venv /opt/venv
COPY docker/train-as-owner.sh /usr/local/bin/train-as-owner
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KERAS_HOME=/tmp/.keras \
    MODEL_DIR=/app/models \
    PORT=8000
WORKDIR /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-m", "app.healthcheck"]
CMD ["python", "-m", "app"]
