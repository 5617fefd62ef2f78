"""`python -m app.healthcheck`: exit 0 when the local service is ready, 1 otherwise.

For container health checks: the image needs no curl, and the port comes from the settings.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from app.settings import Settings


def main() -> int:
    url = f"http://127.0.0.1:{Settings().port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
