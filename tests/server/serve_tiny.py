"""Serve the tiny test model with uvicorn on a loopback port: ``python serve_tiny.py PORT KEY``."""

from __future__ import annotations

import sys

import uvicorn
from server_fixtures import make_registry

from server.app import create_app
from server.settings import Settings


def main() -> None:
    port, key = int(sys.argv[1]), sys.argv[2]
    settings = Settings(api_keys=[key], batch_window_ms=20.0)  # type: ignore[list-item]
    uvicorn.run(create_app(settings, registry=make_registry()), host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
