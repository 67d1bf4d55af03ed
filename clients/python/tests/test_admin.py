"""`client.keys`, `client.providers` and `client.budgets` against the real gateway's admin API: keys
created through the client and then used, shown once and never again; provider secrets never
returned; virtual keys with a budget spent for real, an expiry, metadata, and their spend."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Any, Callable

import openai
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


# ---- virtual keys: budget, expiry, metadata, spend -----------------------------------------------

def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_virtual_keys_budget_is_enforced_and_its_spend_shown(start_setup: Callable[..., Setup]) -> None:
    setup = start_setup(spend_ledger={"flush_interval": "100ms"})
    # 1000 prompt + 100 completion tokens of gpt-4o-mini at $2 / $10 per million: $0.003 a request.
    setup.mock.prompt_tokens, setup.mock.completion_tokens = 1000, 100
    with admin_client(setup) as admin:
        created = admin.keys.create(name="agent-1", owner="team-z", models=["gpt-4o-mini"],
                                    budget={"limit": 0.005, "period": "daily"}, expires_at=date(2099, 1, 1),
                                    metadata={"project": "search", "cost_center": 42})
        assert created.expires_at == 4070908800 and created.org is None
        assert isinstance(created.budget, prism.KeyBudget)
        assert (created.budget.limit, created.budget.period, created.budget.hard) == (0.005, "daily", True)
        assert created.metadata == {"project": "search", "cost_center": 42}

        with Prism(api_key=created.key, base_url=setup.base_url) as agent:
            # $0.003, then $0.006: the request that crosses the limit completes; the next is refused,
            # at once (a spent budget is not retried) and without reaching the provider.
            assert ask(agent).prism.cost == pytest.approx(0.003)
            assert ask(agent).prism.cost == pytest.approx(0.003)
            with pytest.raises(prism.BudgetExceededError) as caught:
                ask(agent)
            err = caught.value
            assert isinstance(err, prism.RateLimitError) and isinstance(err, openai.RateLimitError)
            assert err.status_code == 429 and err.code == "budget_exceeded" and "agent-1" in str(err)
            assert 0 < int(err.response.headers["retry-after"]) <= 86_400
            assert len(setup.mock.chat_requests()) == 2
            # Another key has no budget.
            assert ask(admin).prism.provider == "up"

        details = admin.keys.get(created.id or "")
        assert isinstance(details, prism.KeyDetails) and details.id == created.id and details.name == "agent-1"
        assert created.key not in details.to_json() and getattr(details, "key", None) is None
        assert details.metadata == {"project": "search", "cost_center": 42} and details.owner == "team-z"
        assert details.spend is not None and details.spend.budget is not None
        budget = details.spend.budget
        assert isinstance(budget, prism.BudgetStatus)
        assert (budget.scope, budget.name, budget.period, budget.hard) == ("key", "agent-1", "daily", True)
        assert budget.limit_usd == pytest.approx(0.005) and budget.spent_usd == pytest.approx(0.006)
        assert budget.remaining_usd == 0
        assert budget.resets_at_ms and 0 < budget.resets_at_ms - time.time() * 1000 <= 86_400_000
        # The ledger's side (requests, cost) is written a moment after the answers.
        wait_for(lambda: (admin.keys.retrieve(created.id or "").spend or prism.KeySpend()).requests == 2)
        spend = admin.keys.get(created.id or "").spend
        assert spend is not None and spend.cost_usd == pytest.approx(0.006)

        listed = {k.id: k for k in admin.keys.list()}[created.id]
        assert listed.budget is not None and listed.budget.limit == 0.005 and listed.metadata == created.metadata
        rows = {(b.scope, b.name): b for b in admin.budgets.list()}
        assert rows[("key", "agent-1")].spent_usd == pytest.approx(0.006)

        with pytest.raises(prism.NotFoundError):
            admin.keys.get("key_doesnotexist")
        with pytest.raises(prism.BadRequestError) as refused:
            admin.keys.create(name="bad", budget={"limit": 1, "period": "hourly"})
        assert refused.value.code == "invalid_key_request"


def test_an_expired_key_is_refused_with_key_expired(setup: Setup) -> None:
    expires = int(time.time()) + 2
    with admin_client(setup) as admin:
        by_seconds = admin.keys.create(name="short-lived", expires_at=expires)
        by_datetime = admin.keys.create(name="short-lived-too",
                                        expires_at=datetime.fromtimestamp(expires, timezone.utc))
        by_string = admin.keys.create(name="long-lived", expires_at="2099-01-01T00:00:00Z")
        assert (by_seconds.expires_at, by_datetime.expires_at, by_string.expires_at) == (expires, expires, 4070908800)
        clients = [Prism(api_key=k.key, base_url=setup.base_url, max_retries=0)
                   for k in (by_seconds, by_datetime, by_string)]
        for client in clients:
            assert ask(client).prism.provider == "up"
        time.sleep(max(0.0, expires + 0.6 - time.time()))
        for client in clients[:2]:
            with pytest.raises(prism.AuthenticationError) as caught:
                ask(client)
            assert caught.value.code == "key_expired" and caught.value.status_code == 401
        assert ask(clients[2]).prism.provider == "up"
        for client in clients:
            client.close()
        with pytest.raises(prism.BadRequestError):
            admin.keys.create(name="in-the-past", expires_at=1000)
