"""The model layer: loading bundles, the predictor, runtimes, batching, reloads and state."""
