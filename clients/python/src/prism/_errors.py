"""Typed errors. Prism's classes are subclasses of the openai package's, so code written for the
OpenAI SDK (`except openai.RateLimitError`) keeps working, and both surfaces (the OpenAI-compatible
one and the admin API) raise the same classes.

    PrismError                      = openai.OpenAIError: everything this client raises
    └── APIError                    = openai.APIError
        ├── APIConnectionError      = openai.APIConnectionError (no answer)
        │   └── APITimeoutError     = openai.APITimeoutError
        ├── APIResponseValidationError = openai's: an answer of an unexpected shape
        └── APIStatusError          (openai.APIStatusError) a 4xx/5xx answer; .status_code, .code,
            │                       .type, .param, .body, .request_id, .prism
            ├── BadRequestError          400
            ├── AuthenticationError      401 (a missing or unknown key, or admin token)
            ├── PermissionDeniedError    403 (a key not allowed the model, a wrong admin token)
            ├── NotFoundError            404 (an unknown model, provider, key or route)
            ├── ConflictError            409
            ├── UnprocessableEntityError 422
            ├── RateLimitError           429
            │   └── BudgetExceededError  429 with code `budget_exceeded`
            └── InternalServerError      5xx (502 provider_error, 503, 504 …)
"""

from __future__ import annotations

from typing import Mapping, Optional

import httpx2
import openai

from ._extras import PrismExtras

__all__ = [
    "PrismError",
    "APIError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "BudgetExceededError",
    "InternalServerError",
]

PrismError = openai.OpenAIError
APIError = openai.APIError
APIConnectionError = openai.APIConnectionError
APITimeoutError = openai.APITimeoutError
APIResponseValidationError = openai.APIResponseValidationError


class APIStatusError(openai.APIStatusError):
    """The gateway (or its admin API) answered 4xx or 5xx."""

    prism: PrismExtras
    """The answer's `x-prism-*` headers (request id, and the provider when one answered)."""

    def __init__(self, message: str, *, response: httpx2.Response, body: object | None) -> None:
        super().__init__(message, response=response, body=body)
        self.prism = PrismExtras.from_headers(response.headers)
        self.request_id = self.prism.request_id or response.headers.get("x-request-id")


class BadRequestError(openai.BadRequestError, APIStatusError):
    pass


class AuthenticationError(openai.AuthenticationError, APIStatusError):
    pass


class PermissionDeniedError(openai.PermissionDeniedError, APIStatusError):
    pass


class NotFoundError(openai.NotFoundError, APIStatusError):
    pass


class ConflictError(openai.ConflictError, APIStatusError):
    pass


class UnprocessableEntityError(openai.UnprocessableEntityError, APIStatusError):
    pass


class RateLimitError(openai.RateLimitError, APIStatusError):
    pass


class BudgetExceededError(RateLimitError):
    """429 with code `budget_exceeded`: a spending budget, not a rate, is spent."""


class InternalServerError(openai.InternalServerError, APIStatusError):
    pass


_BY_STATUS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(message: str, *, body: object, response: httpx2.Response) -> APIStatusError:
    """The typed error for a 4xx/5xx answer; `body` is the decoded JSON (or text) of the answer."""
    data = body.get("error", body) if isinstance(body, Mapping) else body
    status = response.status_code
    code: Optional[object] = data.get("code") if isinstance(data, Mapping) else None
    cls: type[APIStatusError]
    if status == 429 and code == "budget_exceeded":
        cls = BudgetExceededError
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = InternalServerError
    else:
        cls = APIStatusError
    return cls(message, response=response, body=data)
