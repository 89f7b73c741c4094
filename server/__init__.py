"""The planning service: a FastAPI app that plans on request."""
