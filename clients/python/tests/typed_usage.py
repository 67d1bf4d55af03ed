"""Not a test module: code as a user writes it, checked by `mypy --strict` (make client-test) to
prove the public API is typed end to end. It is never run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import List, Optional

import openai
from openai.types.chat import ChatCompletion

import prism
from prism import AsyncPrism, Prism


def sync_usage() -> Optional[float]:
    client = Prism(api_key="sk-prism-my-key-here", base_url="http://localhost:8080")
    response: ChatCompletion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}])
    extras: prism.PrismExtras = prism.extras(response)
    provider: Optional[str] = extras.provider
    remaining: Optional[int] = extras.ratelimit.remaining_requests
    print(provider, remaining, extras.fallback_used is True)

    stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}],
                                            stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        print(chunk.choices[0].delta.content if chunk.choices else "")
    cost: Optional[float] = prism.extras(stream).cost

    created: prism.CreatedKey = client.keys.create(name="team-a", models=["gpt-4o-mini"], rate_limit_rpm=60)
    raw_key: str = created.key
    for key in client.keys.list():
        preview: Optional[str] = key.preview
        print(preview)
    if created.id is not None:
        client.keys.revoke(created.id)
    provider_info: prism.ProviderInfo = client.providers.put("groq", {"type": "groq", "api_key": "x"})
    org: prism.OrgConfig = client.org_configs.create(org_id="acme", config={"cache": {"enabled": True}})
    print(raw_key, provider_info.name, org.config)

    # Organizations and virtual keys.
    orgs: List[prism.OrgSummary] = client.org_configs.list()
    org_key: prism.CreatedKey = client.org_configs.create_key("acme", name="acme-bot", metadata={"team": "ml"},
                                                              budget={"limit": 50.0, "period": "monthly"})
    other: prism.CreatedKey = client.keys.create(name="ci", org="acme", expires_at=datetime.now(timezone.utc)
                                                 + timedelta(days=30), budget={"limit": 5.0, "hard": False})
    dated = client.keys.create(name="dated", expires_at="2027-01-31")
    budget: Optional[prism.KeyBudget] = dated.budget
    details: prism.KeyDetails = client.keys.get(org_key.id or "")
    spent: Optional[float] = details.spend.budget.spent_usd if details.spend and details.spend.budget else None
    expires: Optional[int] = other.expires_at
    statuses: List[prism.BudgetStatus] = client.budgets.list()
    fetched = client.org_configs.get("acme")
    key_names = [k.name for k in fetched.keys or []]
    deleted: prism.OrgDeleted = client.org_configs.delete("acme")
    revoked: Optional[int] = deleted.keys_revoked
    print(orgs, budget, spent, expires, statuses, key_names, revoked)

    try:
        client.models.retrieve("nope")
    except prism.BudgetExceededError as err:
        print(err.code)
    except prism.NotFoundError as err:
        status: int = err.status_code
        request_id: Optional[str] = err.request_id
        print(status, request_id, err.prism.provider)
    except openai.OpenAIError:
        pass
    client.close()
    return cost


async def async_usage() -> None:
    async with AsyncPrism(api_key="sk-prism-my-key-here") as client:
        response = await client.embeddings.create(model="text-embedding-3-small", input="x")
        print(prism.extras(response).latency_ms)
        keys: list[prism.KeyInfo] = await client.keys.list()
        print(len(keys))
        created = await client.org_configs.create_key("acme", name="k", expires_at=1_900_000_000)
        details: prism.KeyDetails = await client.keys.get(created.id or "")
        orgs: list[prism.OrgSummary] = await client.org_configs.list()
        budgets: list[prism.BudgetStatus] = await client.budgets.list()
        deleted: prism.OrgDeleted = await client.org_configs.delete("acme")
        print(details.spend, orgs, budgets, deleted.keys_revoked)
