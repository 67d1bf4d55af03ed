"""Prism's Python client: the official `openai` package pointed at a Prism gateway, with Prism's
extras on every answer (`response.prism`), typed errors, and the admin API.

    from prism import Prism
    client = Prism(api_key="sk-prism-my-key-here", base_url="http://localhost:8080")
    response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}])
    print(response.prism.provider, response.prism.cost)
"""

from ._client import DEFAULT_BASE_URL, AsyncPrism, Prism, gateway_root
from ._control import AsyncControlPlane, ControlPlane
from ._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PrismError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._extras import PrismExtras, RateLimitInfo, extras
from ._version import __version__
from .types import (
    BudgetPeriod,
    BudgetStatus,
    CreatedKey,
    ExpiresAt,
    KeyBudget,
    KeyBudgetParam,
    KeyDetails,
    KeyInfo,
    KeySpend,
    OrgConfig,
    OrgDeleted,
    OrgSummary,
    ProviderInfo,
)

__all__ = [
    "Prism",
    "AsyncPrism",
    "DEFAULT_BASE_URL",
    "gateway_root",
    "ControlPlane",
    "AsyncControlPlane",
    "PrismExtras",
    "RateLimitInfo",
    "extras",
    "ProviderInfo",
    "KeyInfo",
    "CreatedKey",
    "KeyDetails",
    "KeySpend",
    "KeyBudget",
    "KeyBudgetParam",
    "BudgetPeriod",
    "ExpiresAt",
    "BudgetStatus",
    "OrgConfig",
    "OrgSummary",
    "OrgDeleted",
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
    "__version__",
]

# Tracebacks and reprs name the public module (`prism.NotFoundError`), not the private one.
for _public in (Prism, AsyncPrism, ControlPlane, AsyncControlPlane, PrismExtras, RateLimitInfo, APIStatusError,
                BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, ConflictError,
                UnprocessableEntityError, RateLimitError, BudgetExceededError, InternalServerError):
    _public.__module__ = "prism"
del _public
