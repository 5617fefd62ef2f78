"""The HTTP layer: the app factory, middleware, error rendering, OpenAPI, codecs and routes."""
