"""The prediction service: loads a model bundle and answers predictions over HTTP."""
