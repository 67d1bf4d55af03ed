"""The admin API (`/-/providers`, `/-/keys`, `/-/orgs`, `/-/budgets`), sync and async, on httpx2
(the HTTP library the openai package is built on). Every route takes
`Authorization: Bearer <admin token>`."""

from __future__ import annotations

import datetime as _dt
import json
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import quote

import httpx2

from ._errors import APIConnectionError, APIResponseValidationError, APITimeoutError, status_error
from .types import (
    BudgetStatus,
    CreatedKey,
    ExpiresAt,
    KeyBudget,
    KeyBudgetParam,
    KeyDetails,
    KeyInfo,
    OrgConfig,
    OrgDeleted,
    OrgSummary,
    ProviderInfo,
)

__all__ = [
    "ControlPlane",
    "AsyncControlPlane",
    "Providers",
    "AsyncProviders",
    "Keys",
    "AsyncKeys",
    "OrgConfigs",
    "AsyncOrgConfigs",
    "Budgets",
    "AsyncBudgets",
]

DEFAULT_TIMEOUT = 30.0
_T = TypeVar("_T")
Timeout = Union[float, httpx2.Timeout, None]


def _segment(value: str) -> str:
    """One path segment: `/`, `?`, `#` and the like percent-encoded, never a path of its own."""
    if not isinstance(value, str) or value == "":
        raise ValueError("an id or name must be a non-empty string")
    return quote(value, safe="")


def _new_http_client(timeout: Timeout) -> httpx2.Client:
    return httpx2.Client(timeout=timeout)


def _new_async_http_client(timeout: Timeout) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=timeout)


def _decode(response: httpx2.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return response.text


def _identity(data: Any) -> Any:
    return data


def _parse(response: httpx2.Response, parse: Callable[[Any], _T]) -> _T:
    body = _decode(response)
    if response.status_code >= 400:
        message = f"Error code: {response.status_code}"
        error = body.get("error", body) if isinstance(body, Mapping) else None
        detail = error.get("message") if isinstance(error, Mapping) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
        raise status_error(message, body=body, response=response)
    try:
        return parse(body)
    except _ShapeError as err:
        raise APIResponseValidationError(response=response, body=body, message=str(err)) from err


class _Base:
    def __init__(self, base_url: str, token: str, default_headers: Optional[Mapping[str, str]]) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._default_headers = dict(default_headers or {})

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _headers(self) -> Dict[str, str]:
        return {**self._default_headers, "Authorization": f"Bearer {self._token}", "Accept": "application/json"}


class ControlPlane(_Base):
    """A small synchronous client for the admin API."""

    def __init__(self, base_url: str, token: str, *, timeout: Timeout = DEFAULT_TIMEOUT,
                 http_client: Optional[httpx2.Client] = None,
                 default_headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(base_url, token, default_headers)
        self._timeout = timeout
        self._client = http_client
        self._owns_client = http_client is None
        self._lock = threading.Lock()

    @property
    def http_client(self) -> httpx2.Client:
        """The HTTP client, created on first use (a Prism client used only for inference opens none)."""
        with self._lock:
            if self._client is None:
                self._client = _new_http_client(self._timeout)
            return self._client

    def request(self, method: str, path: str, *, body: Any = None,
                parse: Callable[[Any], _T] = _identity) -> _T:
        """Sends one request and answers `parse(decoded JSON)`; raises the typed error for a 4xx/5xx."""
        content = None if body is None else json.dumps(body).encode()
        headers = self._headers()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.http_client.request(method, self._url(path), content=content, headers=headers)
        except httpx2.TimeoutException as err:
            raise APITimeoutError(request=err.request) from err
        except httpx2.TransportError as err:
            raise APIConnectionError(request=err.request) from err
        return _parse(response, parse)

    def close(self) -> None:
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None


class AsyncControlPlane(_Base):
    """A small asynchronous client for the admin API."""

    def __init__(self, base_url: str, token: str, *, timeout: Timeout = DEFAULT_TIMEOUT,
                 http_client: Optional[httpx2.AsyncClient] = None,
                 default_headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(base_url, token, default_headers)
        self._timeout = timeout
        self._client = http_client
        self._owns_client = http_client is None

    @property
    def http_client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = _new_async_http_client(self._timeout)
        return self._client

    async def request(self, method: str, path: str, *, body: Any = None,
                      parse: Callable[[Any], _T] = _identity) -> _T:
        content = None if body is None else json.dumps(body).encode()
        headers = self._headers()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self.http_client.request(method, self._url(path), content=content, headers=headers)
        except httpx2.TimeoutException as err:
            raise APITimeoutError(request=err.request) from err
        except httpx2.TransportError as err:
            raise APIConnectionError(request=err.request) from err
        return _parse(response, parse)

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None


# ---- answers -------------------------------------------------------------------------------------

class _ShapeError(ValueError):
    """JSON of an unexpected shape (raised to the caller as APIResponseValidationError)."""


def _model(cls: Callable[..., _T], data: Any) -> _T:
    if not isinstance(data, Mapping):
        raise _ShapeError(f"expected a JSON object, got {type(data).__name__}")
    return cls(**data)


def _models(cls: Callable[..., _T], data: Any, member: str) -> List[_T]:
    items = data.get(member) if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise _ShapeError(f"expected a JSON object with a `{member}` list")
    return [_model(cls, item) for item in items]


def _provider(data: Any) -> ProviderInfo:
    return _model(ProviderInfo.construct, data)


def _org_config(org_id: str, data: Any) -> OrgConfig:
    """`{"org_id", "config"}`, or the config itself: either shape gives an OrgConfig."""
    if isinstance(data, Mapping) and isinstance(data.get("config"), Mapping):
        fields = dict(data)
        fields.setdefault("org_id", org_id)
        return OrgConfig.construct(**fields)
    if isinstance(data, Mapping):
        return OrgConfig.construct(org_id=org_id, config=dict(data))
    return OrgConfig.construct(org_id=org_id, config=None)


def _expires_at(value: ExpiresAt) -> Union[int, str]:
    if isinstance(value, bool):
        raise TypeError("expires_at must be seconds since the epoch, a datetime, a date or an ISO string")
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(value.timestamp())
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return int(value)
    if isinstance(value, (int, str)):
        return value
    raise TypeError("expires_at must be seconds since the epoch, a datetime, a date or an ISO string")


def _budget(value: Union[KeyBudgetParam, KeyBudget, Mapping[str, Any]]) -> Dict[str, Any]:
    if isinstance(value, KeyBudget):
        return {k: v for k, v in value.to_dict().items() if v is not None}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError('budget must be a mapping such as {"limit": 5.0, "period": "monthly"}')


def _key_body(name: str, owner: Optional[str], models: Optional[Sequence[str]], rate_limit_rpm: Optional[int],
              rate_limit_tpm: Optional[int], extra: Mapping[str, Any], *, expires_at: Optional[ExpiresAt] = None,
              budget: Union[KeyBudgetParam, KeyBudget, None] = None, metadata: Optional[Mapping[str, Any]] = None,
              org: Optional[str] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"name": name}
    if owner is not None:
        body["owner"] = owner
    if models is not None:
        if isinstance(models, str):
            raise TypeError("models must be a list of model names, not a string")
        body["models"] = list(models)
    if rate_limit_rpm is not None:
        body["rate_limit_rpm"] = rate_limit_rpm
    if rate_limit_tpm is not None:
        body["rate_limit_tpm"] = rate_limit_tpm
    if expires_at is not None:
        body["expires_at"] = _expires_at(expires_at)
    if budget is not None:
        body["budget"] = _budget(budget)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError("metadata must be a mapping (a JSON object)")
        body["metadata"] = dict(metadata)
    if org is not None:
        body["org"] = org
    body.update(extra)
    return body


# ---- resources -----------------------------------------------------------------------------------

def _providers(data: Any) -> List[ProviderInfo]:
    return _models(ProviderInfo.construct, data, "providers")


def _keys(data: Any) -> List[KeyInfo]:
    return _models(KeyInfo.construct, data, "keys")


def _key_details(data: Any) -> KeyDetails:
    return _model(KeyDetails.construct, data)


def _created_key(data: Any) -> CreatedKey:
    if not isinstance(data, Mapping) or not isinstance(data.get("key"), str):
        raise _ShapeError("expected the created key (a JSON object with `key`)")
    return _model(CreatedKey.construct, data)


def _none(data: Any) -> None:
    return None


def _org_parser(org_id: str, sent: Optional[Mapping[str, Any]] = None) -> Callable[[Any], OrgConfig]:
    def parse(data: Any) -> OrgConfig:
        return _org_config(org_id, dict(sent) if data is None and sent is not None else data)
    return parse


def _org_path(org_id: str) -> str:
    return f"/-/orgs/{_segment(org_id)}/config"


def _orgs(data: Any) -> List[OrgSummary]:
    return _models(OrgSummary.construct, data, "orgs")


def _budgets(data: Any) -> List[BudgetStatus]:
    return _models(BudgetStatus.construct, data, "budgets")


def _org_deleted(org_id: str) -> Callable[[Any], OrgDeleted]:
    def parse(data: Any) -> OrgDeleted:
        if data is None:  # an empty answer: deleted, the count of keys unknown
            return OrgDeleted.construct(deleted=org_id)
        return _model(OrgDeleted.construct, data)
    return parse


class Providers:
    """`/-/providers`: providers added, replaced and removed at runtime (stored encrypted)."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def list(self) -> List[ProviderInfo]:
        """Every provider, from config.yaml (`source="config"`) and the store (`"admin"`), keys masked."""
        return self._control.request("GET", "/-/providers", parse=_providers)

    def get(self, name: str) -> ProviderInfo:
        return self._control.request("GET", f"/-/providers/{_segment(name)}", parse=_provider)

    def put(self, name: str, config: Mapping[str, Any]) -> ProviderInfo:
        """Adds or replaces a provider; `config` has the keys of a `providers.<name>` section."""
        return self._control.request("PUT", f"/-/providers/{_segment(name)}", body=dict(config), parse=_provider)

    def delete(self, name: str) -> None:
        """Removes a stored provider (ConflictError for one defined in config.yaml)."""
        self._control.request("DELETE", f"/-/providers/{_segment(name)}", parse=_none)


class AsyncProviders:
    """`/-/providers`, async."""

    def __init__(self, control: AsyncControlPlane) -> None:
        self._control = control

    async def list(self) -> List[ProviderInfo]:
        return await self._control.request("GET", "/-/providers", parse=_providers)

    async def get(self, name: str) -> ProviderInfo:
        return await self._control.request("GET", f"/-/providers/{_segment(name)}", parse=_provider)

    async def put(self, name: str, config: Mapping[str, Any]) -> ProviderInfo:
        return await self._control.request("PUT", f"/-/providers/{_segment(name)}", body=dict(config),
                                             parse=_provider)

    async def delete(self, name: str) -> None:
        await self._control.request("DELETE", f"/-/providers/{_segment(name)}", parse=_none)


class Keys:
    """`/-/keys`: client keys (virtual keys). `create` returns the raw key, the only time it is shown."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def create(self, *, name: str, owner: Optional[str] = None, models: Optional[Sequence[str]] = None,
               rate_limit_rpm: Optional[int] = None, rate_limit_tpm: Optional[int] = None,
               expires_at: Optional[ExpiresAt] = None, budget: Union[KeyBudgetParam, KeyBudget, None] = None,
               metadata: Optional[Mapping[str, Any]] = None, org: Optional[str] = None,
               extra_body: Optional[Mapping[str, Any]] = None) -> CreatedKey:
        """Creates a key (`POST /-/keys`):

        name            the key's name (in logs, the spend ledger, `budgets.keys` of config.yaml)
        owner           its team (budgets' `teams`, the ledger's `owner`)
        models          the models it may use (default: all)
        rate_limit_rpm, rate_limit_tpm   its own limits (0 or None: none)
        expires_at      when it stops working (401 `key_expired` after): seconds since the epoch, a
                        datetime (naive: UTC), a date, or "2027-01-31[T12:00:00Z]"
        budget          its own budget: {"limit": USD, "period": "daily"|"weekly"|"monthly"|"total",
                        "hard": True} (429 `budget_exceeded` once spent)
        metadata        any JSON object (up to 16 KiB), kept and shown with the key
        org             makes it a key of that organization (as `org_configs.create_key` does)
        extra_body      more members for the request body (fields newer than this client)
        """
        body = _key_body(name, owner, models, rate_limit_rpm, rate_limit_tpm, extra_body or {},
                         expires_at=expires_at, budget=budget, metadata=metadata, org=org)
        return self._control.request("POST", "/-/keys", body=body, parse=_created_key)

    def list(self) -> List[KeyInfo]:
        """Keys from config.yaml and from the store: previews, never keys."""
        return self._control.request("GET", "/-/keys", parse=_keys)

    def get(self, key_id: str) -> KeyDetails:
        """One stored key with what it spent (`.spend`): its requests and cost in the replica's
        ledger and, for a key with a budget, that budget this period (NotFoundError for an unknown id)."""
        return self._control.request("GET", f"/-/keys/{_segment(key_id)}", parse=_key_details)

    retrieve = get

    def revoke(self, key_id: str) -> None:
        """Revokes a stored key at once (NotFoundError for an unknown or already revoked id)."""
        self._control.request("DELETE", f"/-/keys/{_segment(key_id)}", parse=_none)

    delete = revoke


class AsyncKeys:
    """`/-/keys`, async."""

    def __init__(self, control: AsyncControlPlane) -> None:
        self._control = control

    async def create(self, *, name: str, owner: Optional[str] = None, models: Optional[Sequence[str]] = None,
                     rate_limit_rpm: Optional[int] = None, rate_limit_tpm: Optional[int] = None,
                     expires_at: Optional[ExpiresAt] = None, budget: Union[KeyBudgetParam, KeyBudget, None] = None,
                     metadata: Optional[Mapping[str, Any]] = None, org: Optional[str] = None,
                     extra_body: Optional[Mapping[str, Any]] = None) -> CreatedKey:
        body = _key_body(name, owner, models, rate_limit_rpm, rate_limit_tpm, extra_body or {},
                         expires_at=expires_at, budget=budget, metadata=metadata, org=org)
        return await self._control.request("POST", "/-/keys", body=body, parse=_created_key)

    async def list(self) -> List[KeyInfo]:
        return await self._control.request("GET", "/-/keys", parse=_keys)

    async def get(self, key_id: str) -> KeyDetails:
        return await self._control.request("GET", f"/-/keys/{_segment(key_id)}", parse=_key_details)

    retrieve = get

    async def revoke(self, key_id: str) -> None:
        await self._control.request("DELETE", f"/-/keys/{_segment(key_id)}", parse=_none)

    delete = revoke


class OrgConfigs:
    """`/-/orgs`: organizations. Each owns its providers (with their keys), `model_map`, `routing`,
    `rate_limiting`, `cache` and `budgets` (the shapes of config.yaml; `providers` is required), and
    a request made with one of its keys is served by that config alone. `create` and `update` both
    PUT the whole config; answers show provider keys masked."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def create(self, org_id: str, config: Mapping[str, Any]) -> OrgConfig:
        """Stores and applies an organization's config (`PUT /-/orgs/{org_id}/config`; replaces
        one that exists). BadRequestError (`invalid_org_config`) for a config the gateway refuses."""
        return self._control.request("PUT", _org_path(org_id), body=dict(config), parse=_org_parser(org_id, config))

    def update(self, org_id: str, config: Mapping[str, Any]) -> OrgConfig:
        """Replaces an organization's whole config (the same PUT as `create`)."""
        return self._control.request("PUT", _org_path(org_id), body=dict(config), parse=_org_parser(org_id, config))

    def get(self, org_id: str) -> OrgConfig:
        """Its config (secrets masked), `updated_at` and its keys (previews)."""
        return self._control.request("GET", _org_path(org_id), parse=_org_parser(org_id))

    retrieve = get

    def list(self) -> List[OrgSummary]:
        """Every organization (`GET /-/orgs`): its providers' names, how many keys, whether serving."""
        return self._control.request("GET", "/-/orgs", parse=_orgs)

    def create_key(self, org_id: str, *, name: str, owner: Optional[str] = None,
                   models: Optional[Sequence[str]] = None, rate_limit_rpm: Optional[int] = None,
                   rate_limit_tpm: Optional[int] = None, expires_at: Optional[ExpiresAt] = None,
                   budget: Union[KeyBudgetParam, KeyBudget, None] = None,
                   metadata: Optional[Mapping[str, Any]] = None,
                   extra_body: Optional[Mapping[str, Any]] = None) -> CreatedKey:
        """A key of the organization (`POST /-/orgs/{org_id}/keys`; NotFoundError `org_not_found`
        for an organization not being served); the arguments are `keys.create`'s."""
        body = _key_body(name, owner, models, rate_limit_rpm, rate_limit_tpm, extra_body or {},
                         expires_at=expires_at, budget=budget, metadata=metadata)
        return self._control.request("POST", f"/-/orgs/{_segment(org_id)}/keys", body=body, parse=_created_key)

    def delete(self, org_id: str) -> OrgDeleted:
        """Removes the organization and revokes its keys (`.keys_revoked` says how many)."""
        return self._control.request("DELETE", _org_path(org_id), parse=_org_deleted(org_id))


class AsyncOrgConfigs:
    """`/-/orgs`, async."""

    def __init__(self, control: AsyncControlPlane) -> None:
        self._control = control

    async def create(self, org_id: str, config: Mapping[str, Any]) -> OrgConfig:
        return await self._control.request("PUT", _org_path(org_id), body=dict(config),
                                             parse=_org_parser(org_id, config))

    async def update(self, org_id: str, config: Mapping[str, Any]) -> OrgConfig:
        return await self._control.request("PUT", _org_path(org_id), body=dict(config),
                                             parse=_org_parser(org_id, config))

    async def get(self, org_id: str) -> OrgConfig:
        return await self._control.request("GET", _org_path(org_id), parse=_org_parser(org_id))

    retrieve = get

    async def list(self) -> List[OrgSummary]:
        return await self._control.request("GET", "/-/orgs", parse=_orgs)

    async def create_key(self, org_id: str, *, name: str, owner: Optional[str] = None,
                         models: Optional[Sequence[str]] = None, rate_limit_rpm: Optional[int] = None,
                         rate_limit_tpm: Optional[int] = None, expires_at: Optional[ExpiresAt] = None,
                         budget: Union[KeyBudgetParam, KeyBudget, None] = None,
                         metadata: Optional[Mapping[str, Any]] = None,
                         extra_body: Optional[Mapping[str, Any]] = None) -> CreatedKey:
        body = _key_body(name, owner, models, rate_limit_rpm, rate_limit_tpm, extra_body or {},
                         expires_at=expires_at, budget=budget, metadata=metadata)
        return await self._control.request("POST", f"/-/orgs/{_segment(org_id)}/keys", body=body,
                                             parse=_created_key)

    async def delete(self, org_id: str) -> OrgDeleted:
        return await self._control.request("DELETE", _org_path(org_id), parse=_org_deleted(org_id))


class Budgets:
    """`/-/budgets`: every named budget's spend this period (config.yaml's `budgets`, and keys' own)."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def list(self) -> List[BudgetStatus]:
        return self._control.request("GET", "/-/budgets", parse=_budgets)


class AsyncBudgets:
    """`/-/budgets`, async."""

    def __init__(self, control: AsyncControlPlane) -> None:
        self._control = control

    async def list(self) -> List[BudgetStatus]:
        return await self._control.request("GET", "/-/budgets", parse=_budgets)
