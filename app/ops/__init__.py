"""Operations beside the request path: metrics, logs, request context and API keys."""
