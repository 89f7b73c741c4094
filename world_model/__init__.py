"""Action-conditioned world models: frozen encoders, predictor, state probe, decoder, bundles."""
