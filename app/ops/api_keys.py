"""Optional API keys for the prediction and model endpoints.

Probes and scrapes must work without credentials (a kubelet or Prometheus has none), so
health, readiness, metrics and the API documentation stay open; everything else needs a key.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path

from app.errors import Unauthorized
from app.settings import Settings

DOCS_ASSETS = "/docs-assets"
"""Where Swagger UI's and ReDoc's JavaScript, CSS and icon are served from (no CDN)."""

_OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
# KServe's per-model readiness probes: /v2/models/{name}[/versions/{version}]/ready
_OPEN_PATTERN = re.compile(r"/v2/models/[^/]+(/versions/[^/]+)?/ready")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tabserve"'}


class ApiKeyError(ValueError):
    """API_KEYS_FILE cannot be read or holds no key."""


def read_api_keys(settings: Settings) -> tuple[bytes, ...]:
    """The keys from API_KEYS and API_KEYS_FILE; empty when neither is set."""
    keys = [k.strip() for k in settings.api_keys.split(",")]
    path = settings.api_keys_file
    if path is not None:
        from_file = _keys_in(path)
        if not from_file:
            # An empty mounted secret must not silently turn authentication off.
            raise ApiKeyError(f"API_KEYS_FILE {path} holds no key")
        keys += from_file
    return tuple(k.encode() for k in keys if k)


def _keys_in(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiKeyError(f"API_KEYS_FILE {path} cannot be read: {exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_open(path: str) -> bool:
    return (
        path in _OPEN_PATHS
        or path.startswith(f"{DOCS_ASSETS}/")
        or _OPEN_PATTERN.fullmatch(path) is not None
    )


class ApiKeys:
    """Checks a request's key against every configured key in constant time."""

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        self._keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Raise Unauthorized (401) unless a header carries one of the keys."""
        offered = _offered_key(headers)
        if offered is None:
            raise Unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers=_CHALLENGE,
            )
        # Compare with every key, without stopping at a match, so timing says nothing about
        # which key (or how much of one) matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(offered, key)
        if not matched:
            raise Unauthorized("the API key is not valid", headers=_CHALLENGE)


def _offered_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
    return None
