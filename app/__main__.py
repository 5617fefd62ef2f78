"""`python -m app`: load the model, then serve; a bad bundle or setting exits 2 in one line."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from app.bundle import BundleError
from app.factory import create_app
from app.loading import load_models
from app.logs import configure_logging
from app.settings import Settings


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: setting {str(first['loc'][0]).upper()}: {first['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        models = load_models(settings)
    except BundleError as exc:
        logging.getLogger("app").critical("cannot load model: %s", exc)
        return 2
    uvicorn.run(
        create_app(settings, models),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
