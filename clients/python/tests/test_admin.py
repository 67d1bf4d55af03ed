"""`client.keys` and `client.providers` against the real gateway's admin API: keys created through
the client and then used, shown once and never again; provider secrets never returned."""

from __future__ import annotations

from typing import Any

import pytest

import prism
from prism import Prism
from prism_helpers import openai_provider

from conftest import ADMIN_TOKEN, CLIENT_KEY, OTHER_KEY, UPSTREAM_SECRET, Setup


def admin_client(setup: Setup, **kwargs: Any) -> Prism:
    return Prism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key=ADMIN_TOKEN, **kwargs)


def ask(client: Prism, model: str = "gpt-4o-mini") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_a_created_key_works_at_once_is_shown_once_and_revoked(setup: Setup) -> None:
    with admin_client(setup) as admin:
        created = admin.keys.create(name="team-a", owner="alpha", models=["gpt-4o-mini"], rate_limit_rpm=100)
        assert isinstance(created, prism.CreatedKey)
        assert created.key.startswith("sk-prism-") and created.id and created.preview
        assert created.preview.endswith(created.key[-4:])
        assert created.name == "team-a" and created.owner == "alpha" and created.models == ["gpt-4o-mini"]

        # The new key is a client key at once.
        with Prism(api_key=created.key, base_url=setup.base_url) as team:
            assert ask(team).prism.provider == "up"
            setup.gw.wait_for_log(r"request id=\S+ key=team-a owner=alpha")
            with pytest.raises(prism.PermissionDeniedError):
                ask(team, model="gpt-4o")

            # Listing shows previews only: never this key, never a key from config.yaml.
            listing = admin.keys.list()
            assert all(isinstance(k, prism.KeyInfo) for k in listing)
            dumped = repr([k.to_dict() for k in listing])
            for secret in (created.key, CLIENT_KEY, OTHER_KEY):
                assert secret not in dumped
            by_name = {k.name: k for k in listing}
            assert by_name["team-a"].source == "admin" and by_name["team-a"].id == created.id
            assert by_name["client-key"].source == "config" and by_name["client-key"].id is None
            assert not hasattr(by_name["team-a"], "key") or getattr(by_name["team-a"], "key", None) is None

            admin.keys.revoke(created.id)
            with pytest.raises(prism.AuthenticationError):
                ask(team)
        revoked = {k.id: k for k in admin.keys.list()}[created.id]
        assert revoked.revoked_at
        with pytest.raises(prism.NotFoundError):
            admin.keys.revoke(created.id)


def test_providers_added_used_and_removed(setup: Setup, make_mock: Any) -> None:
    second = make_mock()
    with admin_client(setup) as admin:
        stored = admin.providers.put("second", openai_provider(second.v1_url, models=["extra-model"],
                                                                api_key=UPSTREAM_SECRET))
        assert isinstance(stored, prism.ProviderInfo)
        assert stored.name == "second" and stored.source == "admin" and stored.models == ["extra-model"]
        assert stored.api_key and UPSTREAM_SECRET not in stored.api_key  # masked

        answer = ask(admin, model="extra-model")
        assert answer.prism.provider == "second" and answer.choices[0].message.content == second.content
        assert second.last_chat().headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"

        providers = admin.providers.list()
        assert {p.name: p.source for p in providers} == {"up": "config", "second": "admin"}
        assert UPSTREAM_SECRET not in repr([p.to_dict() for p in providers])
        assert UPSTREAM_SECRET not in admin.providers.get("second").to_json()

        admin.providers.delete("second")
        assert [p.name for p in admin.providers.list()] == ["up"]
        with pytest.raises(prism.NotFoundError):
            ask(admin, model="extra-model")


def test_a_separate_control_plane_url(setup: Setup) -> None:
    """The admin API addressed on its own (here the same gateway, given with /v1, which is dropped)."""
    with Prism(api_key=CLIENT_KEY, base_url="http://127.0.0.1:9", control_plane_url=setup.base_url + "/v1",
               admin_key=ADMIN_TOKEN) as client:
        assert client.control_plane_url == setup.base_url
        assert {k.name for k in client.keys.list()} >= {"client-key", "limited-key"}
        assert client.control_plane.request("GET", "/-/config")["providers"]
