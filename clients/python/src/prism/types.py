"""What the admin API answers, and what some of its calls take. Models are the openai package's
`BaseModel` (attribute access, `.to_dict()`, `.to_json()`), built leniently: a field a newer
gateway adds is kept as an extra."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List, Optional, Union

from openai import BaseModel
from typing_extensions import Literal, Required, TypedDict

__all__ = [
    "ProviderInfo",
    "KeyBudget",
    "KeyBudgetParam",
    "BudgetPeriod",
    "ExpiresAt",
    "KeyInfo",
    "CreatedKey",
    "KeySpend",
    "KeyDetails",
    "BudgetStatus",
    "OrgConfig",
    "OrgSummary",
    "OrgDeleted",
]

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]
"""Budget periods, calendar periods in UTC (`weekly` from Monday)."""

ExpiresAt = Union[int, float, str, _dt.datetime, _dt.date]
"""When a key stops working (`keys.create(expires_at=...)`): seconds since the epoch, a `datetime`
(naive ones are taken as UTC), a `date` (its midnight, UTC), or the gateway's own spelling,
`"2027-01-31[T12:00:00Z]"` (UTC)."""


class ProviderInfo(BaseModel):
    """A provider as `GET /-/providers` shows it: its config section, secrets masked (`sk-…abcd`)."""

    name: str
    source: Optional[str] = None
    """`config` (config.yaml) or `admin` (added through the admin API)."""
    type: Optional[str] = None
    api_format: Optional[str] = None
    base_url: Optional[str] = None
    models: Optional[List[str]] = None
    api_key: Optional[str] = None
    """Masked: the gateway never returns a provider key."""


class KeyBudgetParam(TypedDict, total=False):
    """A key's own budget as `keys.create(budget=...)` takes it: `{"limit": 5.0, "period": "monthly"}`."""

    limit: Required[float]
    """USD."""
    period: BudgetPeriod
    """Default: the gateway's `budgets.default_period` (monthly)."""
    hard: bool
    """Default True: refuse (429 `budget_exceeded`) once spent; False only warns."""


class KeyBudget(BaseModel):
    """A key's own budget as the gateway stored it."""

    limit: Optional[float] = None
    """USD."""
    period: Optional[str] = None
    hard: Optional[bool] = None


class KeyInfo(BaseModel):
    """A client key as `GET /-/keys` shows it: a preview, never the key."""

    id: Optional[str] = None
    """Keys added through the admin API have one (for `keys.get`, `keys.revoke`); keys from
    config.yaml do not."""
    name: str
    source: Optional[str] = None
    preview: Optional[str] = None
    owner: Optional[str] = None
    models: Optional[List[str]] = None
    rate_limit_rpm: Optional[int] = None
    rate_limit_tpm: Optional[int] = None
    created_at: Optional[int] = None
    """Seconds since the epoch."""
    revoked_at: Optional[int] = None
    org: Optional[str] = None
    """The organization the key belongs to (its requests are served by the organization's config);
    None for the file's keys and keys of the default configuration."""
    expires_at: Optional[int] = None
    """Seconds since the epoch; after it the key gets 401 `key_expired`."""
    budget: Optional[KeyBudget] = None
    metadata: Optional[Dict[str, Any]] = None


class CreatedKey(KeyInfo):
    """`keys.create`'s answer: the one time the raw key is shown (only its SHA-256 is stored)."""

    key: str


class BudgetStatus(BaseModel):
    """One budget's spend this period (`GET /-/budgets`, and a key's `spend.budget`)."""

    scope: Optional[str] = None
    """`org`, `team`, `user`, `key` or `model`."""
    name: Optional[str] = None
    period: Optional[str] = None
    resets_at_ms: Optional[int] = None
    """When the period ends, ms since the epoch; None for a `total` budget."""
    hard: Optional[bool] = None
    limit_usd: Optional[float] = None
    spent_usd: Optional[float] = None
    remaining_usd: Optional[float] = None


class KeySpend(BaseModel):
    """What a key spent: its requests and `cost_usd` in this replica's spend ledger, and, for a key
    with a budget, that budget this period (exact across replicas)."""

    requests: Optional[int] = None
    cost_usd: Optional[float] = None
    budget: Optional[BudgetStatus] = None


class KeyDetails(KeyInfo):
    """`keys.get`'s answer: one stored key (a preview, never the key) with what it spent."""

    spend: Optional[KeySpend] = None


class OrgConfig(BaseModel):
    """An organization's config as the admin API answers it (`/-/orgs/{org_id}/config`): the
    sections it owns, provider keys masked (`sk-…abcd`); `get` adds `updated_at` and its keys."""

    org_id: Optional[str] = None
    config: Optional[Dict[str, Any]] = None
    updated_at: Optional[int] = None
    """Seconds since the epoch."""
    keys: Optional[List[KeyInfo]] = None
    """Its keys (previews); only in `org_configs.get`."""


class OrgSummary(BaseModel):
    """One organization as `GET /-/orgs` lists it."""

    org_id: str
    serving: Optional[bool] = None
    """Whether its config is built and serving requests."""
    providers: Optional[List[str]] = None
    keys: Optional[int] = None
    """How many keys it has."""
    updated_at: Optional[int] = None


class OrgDeleted(BaseModel):
    """`org_configs.delete`'s answer."""

    deleted: Optional[str] = None
    """The organization's id."""
    keys_revoked: Optional[int] = None
    """How many of its keys were revoked with it."""
