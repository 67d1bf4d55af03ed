"""What the admin API answers. Models are the openai package's `BaseModel` (attribute access,
`.to_dict()`, `.to_json()`), built leniently: a field a newer gateway adds is kept as an extra."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from openai import BaseModel

__all__ = ["ProviderInfo", "KeyInfo", "CreatedKey", "OrgConfig"]


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


class KeyInfo(BaseModel):
    """A client key as `GET /-/keys` shows it: a preview, never the key."""

    id: Optional[str] = None
    """Keys added through the admin API have one (for `keys.revoke`); keys from config.yaml do not."""
    name: str
    source: Optional[str] = None
    preview: Optional[str] = None
    owner: Optional[str] = None
    models: Optional[List[str]] = None
    rate_limit_rpm: Optional[int] = None
    rate_limit_tpm: Optional[int] = None
    created_at: Optional[int] = None
    revoked_at: Optional[int] = None


class CreatedKey(KeyInfo):
    """`keys.create`'s answer: the one time the raw key is shown (only its SHA-256 is stored)."""

    key: str


class OrgConfig(BaseModel):
    """An organization's config as the admin API answers it (`/-/orgs/{org_id}/config`)."""

    org_id: Optional[str] = None
    config: Optional[Dict[str, Any]] = None
