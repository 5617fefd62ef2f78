"""Reference servers the service is measured against, each run on its own by uvicorn.

`fastapi_noop` and `raw_asgi` do no inference (the ceilings of our stack and of the server);
`fastapi_keras_predict` and `fastapi_savedmodel` serve the same bundle the way FastAPI users
commonly write it. The TensorFlow ones find the bundle through `BENCH_VERSION_DIR`.
"""
