"""The admin API (`/-/providers`, `/-/keys`, `/-/orgs/{org_id}/config`), sync and async, on httpx2
(the HTTP library the openai package is built on). Every route takes
`Authorization: Bearer <admin token>`."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import quote

import httpx2

from ._errors import APIConnectionError, APIResponseValidationError, APITimeoutError, status_error
from .types import CreatedKey, KeyInfo, OrgConfig, ProviderInfo

__all__ = [
    "ControlPlane",
    "AsyncControlPlane",
    "Providers",
    "AsyncProviders",
    "Keys",
    "AsyncKeys",
    "OrgConfigs",
    "AsyncOrgConfigs",
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


def _key_body(name: str, owner: Optional[str], models: Optional[Sequence[str]], rate_limit_rpm: Optional[int],
              rate_limit_tpm: Optional[int], extra: Mapping[str, Any]) -> Dict[str, Any]:
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
    body.update(extra)
    return body


# ---- resources -----------------------------------------------------------------------------------

def _providers(data: Any) -> List[ProviderInfo]:
    return _models(ProviderInfo.construct, data, "providers")


def _keys(data: Any) -> List[KeyInfo]:
    return _models(KeyInfo.construct, data, "keys")


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
    """`/-/keys`: client keys. `create` returns the raw key, the only time it is shown."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def create(self, *, name: str, owner: Optional[str] = None, models: Optional[Sequence[str]] = None,
               rate_limit_rpm: Optional[int] = None, rate_limit_tpm: Optional[int] = None,
               extra_body: Optional[Mapping[str, Any]] = None) -> CreatedKey:
        body = _key_body(name, owner, models, rate_limit_rpm, rate_limit_tpm, extra_body or {})
        return self._control.request("POST", "/-/keys", body=body, parse=_created_key)

    def list(self) -> List[KeyInfo]:
        """Keys from config.yaml and from the store: previews, never keys."""
        return self._control.request("GET", "/-/keys", parse=_keys)

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
                     extra_body: Optional[Mapping[str, Any]] = None) -> CreatedKey:
        body = _key_body(name, owner, models, rate_limit_rpm, rate_limit_tpm, extra_body or {})
        return await self._control.request("POST", "/-/keys", body=body, parse=_created_key)

    async def list(self) -> List[KeyInfo]:
        return await self._control.request("GET", "/-/keys", parse=_keys)

    async def revoke(self, key_id: str) -> None:
        await self._control.request("DELETE", f"/-/keys/{_segment(key_id)}", parse=_none)

    delete = revoke


class OrgConfigs:
    """`/-/orgs/{org_id}/config`: an organization's config (`providers`, `routing`, `cache`,
    `rate_limiting`, … as in config.yaml). `create` and `update` both PUT the whole config."""

    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def create(self, org_id: str, config: Mapping[str, Any]) -> OrgConfig:
        return self._control.request("PUT", _org_path(org_id), body=dict(config), parse=_org_parser(org_id, config))

    def update(self, org_id: str, config: Mapping[str, Any]) -> OrgConfig:
        return self._control.request("PUT", _org_path(org_id), body=dict(config), parse=_org_parser(org_id, config))

    def get(self, org_id: str) -> OrgConfig:
        return self._control.request("GET", _org_path(org_id), parse=_org_parser(org_id))

    retrieve = get

    def delete(self, org_id: str) -> None:
        self._control.request("DELETE", _org_path(org_id), parse=_none)


class AsyncOrgConfigs:
    """`/-/orgs/{org_id}/config`, async."""

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

    async def delete(self, org_id: str) -> None:
        await self._control.request("DELETE", _org_path(org_id), parse=_none)
