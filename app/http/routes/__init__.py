"""HTTP routes: thin layers that validate, call the predictor and shape the response."""
