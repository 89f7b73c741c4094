"""Exceptions raised by the clients: every failure is a :class:`WorldplanError`.

HTTP errors carry the status code and the server's ``detail`` message; failures
to reach the server carry ``status_code=None``.
"""

from __future__ import annotations

import json

import httpx


class WorldplanError(Exception):
    """Any failure talking to the planning service.

    Attributes:
        status_code: The HTTP status of the response, or None when there was none.
        detail: The server's ``detail`` message (or a description of the failure).
    """

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        self.detail = detail
        self.status_code = status_code
        prefix = f"HTTP {status_code}: " if status_code is not None else ""
        super().__init__(prefix + detail)


class WorldplanConnectionError(WorldplanError):
    """The server could not be reached (after the configured retries)."""


class WorldplanTimeoutError(WorldplanError):
    """The server did not answer within the timeout (not retried: a plan may be running)."""


class APIError(WorldplanError):
    """The server answered with an error status."""


class BadRequestError(APIError):
    """400 or 422: the request was refused as invalid (the detail says what to change)."""


class AuthenticationError(APIError):
    """401 or 403: missing or wrong API key."""


class NotFoundError(APIError):
    """404: unknown model, plan id or warm-start token."""


class RequestTooLargeError(APIError):
    """413: the request body is larger than the server accepts."""


class UnsupportedMediaTypeError(APIError):
    """415: the body is neither JSON nor multipart."""


class ServerError(APIError):
    """5xx: the server failed; not retried (a plan request may have had effects)."""


class ResponseFormatError(WorldplanError):
    """A successful response whose body does not match the API contract."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    413: RequestTooLargeError,
    415: UnsupportedMediaTypeError,
    422: BadRequestError,
}


def error_detail(response: httpx.Response) -> str:
    """The ``detail`` of an error body, or the raw text when the body is not one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail)
    return json.dumps(body)


def error_for(response: httpx.Response) -> APIError:
    """The exception for an error response (status >= 400)."""
    code = response.status_code
    cls = _BY_STATUS.get(code, ServerError if code >= 500 else APIError)
    return cls(error_detail(response), code)
