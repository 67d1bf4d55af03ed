"""`Prism` and `AsyncPrism`: the openai package's clients pointed at a Prism gateway, with Prism's
extras on every answer, Prism's typed errors, and the admin API beside them."""

from __future__ import annotations

import json
import os
import weakref
from typing import Any, Mapping, Optional, Union

import httpx2
import openai
from typing_extensions import Self, override

from ._control import (
    DEFAULT_TIMEOUT,
    AsyncBudgets,
    AsyncControlPlane,
    AsyncKeys,
    AsyncOrgConfigs,
    AsyncProviders,
    Budgets,
    ControlPlane,
    Keys,
    OrgConfigs,
    Providers,
)
from ._errors import PrismError, status_error
from ._extras import PrismExtras, attach

__all__ = ["Prism", "AsyncPrism", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "http://localhost:8080"
"""Where `make run` (and the default config) serves."""

Timeout = Union[float, httpx2.Timeout, None]


def gateway_root(url: Union[str, httpx2.URL]) -> str:
    """The gateway's root URL: `http://host:8080`, `http://host:8080/` and `http://host:8080/v1`
    all give `http://host:8080` (a path prefix before `/v1` is kept)."""
    text = str(url).strip().rstrip("/")
    if text.endswith("/v1"):
        text = text[: -len("/v1")]
    if not text:
        raise PrismError("base_url must not be empty")
    return text


def _resolve_key(api_key: Optional[str]) -> str:
    key = api_key if api_key is not None else os.environ.get("PRISM_API_KEY")
    if not key:
        # OPENAI_API_KEY is deliberately not read: a real OpenAI key has no business at a gateway.
        raise PrismError("Missing the Prism client key: pass Prism(api_key=...) or set PRISM_API_KEY "
                         "(while the gateway's auth is off any non-empty string will do).")
    return key


class _Settings:
    """What Prism adds to the openai client's settings, resolved once."""

    def __init__(self, api_key: str, base_url: Union[str, httpx2.URL, None], control_plane_url: Optional[str],
                 admin_key: Optional[str]) -> None:
        self.root = gateway_root(base_url or os.environ.get("PRISM_BASE_URL") or DEFAULT_BASE_URL)
        self.explicit_control_plane_url = control_plane_url or os.environ.get("PRISM_CONTROL_PLANE_URL")
        self.control_plane_url = gateway_root(self.explicit_control_plane_url or self.root)
        self.explicit_admin_key = admin_key or os.environ.get("PRISM_ADMIN_TOKEN")
        # The seed's `Prism(api_key=..., control_plane_url=...)` manages orgs with the key it has.
        self.admin_key = self.explicit_admin_key or api_key


def _copy_kwargs(kwargs: dict[str, Any], settings: _Settings, timeout: Timeout,
                 http_client: Any) -> dict[str, Any]:
    """The keyword arguments for openai's `copy()`: Prism's own settings travel in `_extra_kwargs`
    (openai passes those to the new client's constructor)."""
    extra = dict(kwargs.pop("_extra_kwargs", None) or {})
    if settings.explicit_control_plane_url is not None:
        extra.setdefault("control_plane_url", settings.explicit_control_plane_url)
    if settings.explicit_admin_key is not None:
        extra.setdefault("admin_key", settings.explicit_admin_key)
    extra.setdefault("control_plane_timeout", timeout)
    if http_client is not None:
        extra.setdefault("control_plane_http_client", http_client)
    kwargs["_extra_kwargs"] = extra
    return kwargs


class Prism(openai.OpenAI):
    """The OpenAI client for a Prism gateway.

    Everything `openai.OpenAI` has works as it does there (`chat.completions`, `embeddings`,
    `models`, `responses`, `with_raw_response`, `with_options`, streams, retries), against
    `{base_url}/v1`. What Prism adds:

    - `response.prism` on every answer (and `stream.prism`, and on each chunk): a
      `PrismExtras` with `provider`, `model_used`, `latency_ms`, `cost`, `cache`, `request_id`,
      `fallback_used`, `routing_strategy`, `ratelimit` from the `x-prism-*` headers. Type checkers
      do not know the attribute on openai's types: `prism.extras(response)` is the typed spelling.
    - errors are Prism's classes (`prism.AuthenticationError`, `prism.BudgetExceededError`, …),
      subclasses of openai's, so `except openai.RateLimitError` still catches them.
    - `providers`, `keys`, `org_configs` and `budgets`: the admin API at `control_plane_url`
      (default: the gateway itself), with `admin_key` as the bearer token (default: `api_key`).

    Arguments (all keyword-only; any other keyword is passed to `openai.OpenAI`):
      api_key             the Prism client key (`sk-prism-…`); default `$PRISM_API_KEY`
      base_url            the gateway, with or without `/v1`; default `$PRISM_BASE_URL`, else
                          `http://localhost:8080`
      control_plane_url   where the admin API is; default `$PRISM_CONTROL_PLANE_URL`, else base_url
      admin_key           the admin token for it; default `$PRISM_ADMIN_TOKEN`, else api_key
      control_plane_timeout, control_plane_http_client   for the admin API's httpx2 client
    """

    providers: Providers
    keys: Keys
    org_configs: OrgConfigs
    budgets: Budgets

    def __init__(self, *, api_key: Optional[str] = None, base_url: Union[str, httpx2.URL, None] = None,
                 control_plane_url: Optional[str] = None, admin_key: Optional[str] = None,
                 control_plane_timeout: Timeout = DEFAULT_TIMEOUT,
                 control_plane_http_client: Optional[httpx2.Client] = None,
                 **kwargs: Any) -> None:
        key = _resolve_key(api_key)
        settings = _Settings(key, base_url, control_plane_url, admin_key)
        super().__init__(api_key=key, base_url=settings.root + "/v1", **kwargs)
        self._prism_settings = settings
        self._prism_streams: weakref.WeakKeyDictionary[httpx2.Response, PrismExtras] = weakref.WeakKeyDictionary()
        self._control_plane_timeout = control_plane_timeout
        self._control_plane_http_client = control_plane_http_client
        self._control_plane = ControlPlane(settings.control_plane_url, settings.admin_key,
                                           timeout=control_plane_timeout, http_client=control_plane_http_client)
        self.providers = Providers(self._control_plane)
        self.keys = Keys(self._control_plane)
        self.org_configs = OrgConfigs(self._control_plane)
        self.budgets = Budgets(self._control_plane)

    @property
    def control_plane_url(self) -> str:
        """The admin API's root URL."""
        return self._prism_settings.control_plane_url

    @property
    def control_plane(self) -> ControlPlane:
        """The admin API client, for routes this package has no method for yet:
        `client.control_plane.request("GET", "/-/spend?group_by=model")`."""
        return self._control_plane

    # ---- Prism's extras on openai's answers --------------------------------------------------------

    @override
    def _process_response(self, **kwargs: Any) -> Any:
        result = super()._process_response(**kwargs)
        if isinstance(result, openai.Stream):
            value = PrismExtras.from_headers(result.response.headers)
            self._prism_streams[result.response] = value
            attach(result, value)
        return result

    @override
    def _process_response_data(self, **kwargs: Any) -> Any:
        result = super()._process_response_data(**kwargs)
        _attach_extras(self._prism_streams, result, kwargs.get("data"), kwargs.get("response"))
        return result

    @override
    def _make_status_error(self, err_msg: str, *, body: object, response: httpx2.Response) -> openai.APIStatusError:
        return status_error(err_msg, body=body, response=response)

    @override
    def _should_retry(self, response: httpx2.Response) -> bool:
        # A spent budget stays spent: retrying (as openai does for every 429) only adds latency.
        return not _is_budget_exceeded(response) and super()._should_retry(response)

    # ---- lifecycle ---------------------------------------------------------------------------------

    @override
    def close(self) -> None:
        try:
            super().close()
        finally:
            self._control_plane.close()

    @override
    def copy(self, **kwargs: Any) -> Self:
        """openai's `copy()` / `with_options()`, keeping Prism's settings."""
        return super().copy(**_copy_kwargs(kwargs, self._prism_settings, self._control_plane_timeout,
                                           self._control_plane_http_client))

    with_options = copy


class AsyncPrism(openai.AsyncOpenAI):
    """`Prism` for asyncio: `openai.AsyncOpenAI` for a Prism gateway, with the same extras,
    errors and admin API (`await client.keys.create(...)`)."""

    providers: AsyncProviders
    keys: AsyncKeys
    org_configs: AsyncOrgConfigs
    budgets: AsyncBudgets

    def __init__(self, *, api_key: Optional[str] = None, base_url: Union[str, httpx2.URL, None] = None,
                 control_plane_url: Optional[str] = None, admin_key: Optional[str] = None,
                 control_plane_timeout: Timeout = DEFAULT_TIMEOUT,
                 control_plane_http_client: Optional[httpx2.AsyncClient] = None,
                 **kwargs: Any) -> None:
        key = _resolve_key(api_key)
        settings = _Settings(key, base_url, control_plane_url, admin_key)
        super().__init__(api_key=key, base_url=settings.root + "/v1", **kwargs)
        self._prism_settings = settings
        self._prism_streams: weakref.WeakKeyDictionary[httpx2.Response, PrismExtras] = weakref.WeakKeyDictionary()
        self._control_plane_timeout = control_plane_timeout
        self._control_plane_http_client = control_plane_http_client
        self._control_plane = AsyncControlPlane(settings.control_plane_url, settings.admin_key,
                                                timeout=control_plane_timeout, http_client=control_plane_http_client)
        self.providers = AsyncProviders(self._control_plane)
        self.keys = AsyncKeys(self._control_plane)
        self.org_configs = AsyncOrgConfigs(self._control_plane)
        self.budgets = AsyncBudgets(self._control_plane)

    @property
    def control_plane_url(self) -> str:
        return self._prism_settings.control_plane_url

    @property
    def control_plane(self) -> AsyncControlPlane:
        return self._control_plane

    @override
    async def _process_response(self, **kwargs: Any) -> Any:
        result = await super()._process_response(**kwargs)
        if isinstance(result, openai.AsyncStream):
            value = PrismExtras.from_headers(result.response.headers)
            self._prism_streams[result.response] = value
            attach(result, value)
        return result

    @override
    def _process_response_data(self, **kwargs: Any) -> Any:
        result = super()._process_response_data(**kwargs)
        _attach_extras(self._prism_streams, result, kwargs.get("data"), kwargs.get("response"))
        return result

    @override
    def _make_status_error(self, err_msg: str, *, body: object, response: httpx2.Response) -> openai.APIStatusError:
        return status_error(err_msg, body=body, response=response)

    @override
    def _should_retry(self, response: httpx2.Response) -> bool:
        # A spent budget stays spent: retrying (as openai does for every 429) only adds latency.
        return not _is_budget_exceeded(response) and super()._should_retry(response)

    @override
    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._control_plane.close()

    @override
    def copy(self, **kwargs: Any) -> Self:
        return super().copy(**_copy_kwargs(kwargs, self._prism_settings, self._control_plane_timeout,
                                           self._control_plane_http_client))

    with_options = copy


def _is_budget_exceeded(response: httpx2.Response) -> bool:
    """A 429 whose body says `budget_exceeded` (only when the body is already read: never blocks)."""
    if response.status_code != 429:
        return False
    try:
        body = json.loads(response.content)
    except Exception:  # not read yet (a stream), or not JSON
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == "budget_exceeded"


def _attach_extras(streams: Mapping[httpx2.Response, PrismExtras], result: object, data: object,
                   response: object) -> None:
    """Gives a parsed answer its `prism`. A stream's chunks share the stream's extras, whose `cost`
    the usage chunk fills in; any other answer gets its own, from its headers."""
    if not isinstance(result, openai.BaseModel) or not isinstance(response, httpx2.Response):
        return
    value = streams.get(response)
    if value is None:
        value = PrismExtras.from_headers(response.headers)
    value._take_usage(data)
    attach(result, value)
