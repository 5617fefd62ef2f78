"""Offline training: a CSV in, a model bundle under `models/<name>/<version>/` out."""
