"""The ASGI app for servers: `uvicorn app.main:app`. Settings come from the environment."""

from app.http.factory import create_app

app = create_app()
