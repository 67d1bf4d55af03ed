"""`AsyncPrism` against the real gateway (anyio's pytest plugin, asyncio backend)."""

from __future__ import annotations

import anyio
import openai
import pytest
from openai.types.chat import ChatCompletion

import prism
from prism import AsyncPrism

from conftest import ADMIN_TOKEN, CLIENT_KEY, Setup

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_chat_and_extras(setup: Setup) -> None:
    setup.mock.prompt_tokens, setup.mock.completion_tokens, setup.mock.cached_tokens = 1000, 200, 400
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url) as client:
        response = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}])
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == setup.mock.content
    assert response.prism.provider == "up" and response.prism.cost == pytest.approx(0.0034)
    assert prism.extras(response).request_id


async def test_stream(setup: Setup) -> None:
    setup.mock.prompt_tokens, setup.mock.completion_tokens = 1000, 200
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url + "/v1") as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        assert isinstance(stream, openai.AsyncStream)
        assert stream.prism.provider == "up" and stream.prism.cost is None
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == setup.mock.content
    assert stream.prism.cost == pytest.approx(0.004)


async def test_concurrent_requests_keep_their_own_extras(setup: Setup) -> None:
    ids: dict[int, str] = {}
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url) as client:
        async def one(n: int) -> None:
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {n}"}],
                extra_headers={"x-prism-request-id": f"async-{n}"})
            ids[n] = prism.extras(answer).request_id or ""

        async with anyio.create_task_group() as group:
            for n in range(8):
                group.start_soon(one, n)
    assert ids == {n: f"async-{n}" for n in range(8)}


async def test_embeddings_models_and_errors(setup: Setup) -> None:
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url) as client:
        embedded = await client.embeddings.create(model="text-embedding-3-small", input="one")
        assert embedded.prism.provider == "up" and len(embedded.data) == 1
        assert "gpt-4o" in {m.id async for m in client.models.list()}
        with pytest.raises(prism.NotFoundError) as caught:
            await client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        assert caught.value.code == "model_not_found"
    async with AsyncPrism(api_key="sk-prism-unknown-000000000000", base_url=setup.base_url) as stranger:
        with pytest.raises(prism.AuthenticationError):
            await stranger.models.list()


async def test_admin_keys_and_providers(setup: Setup) -> None:
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key=ADMIN_TOKEN) as admin:
        created = await admin.keys.create(name="async-team", models=["gpt-4o-mini"])
        assert created.key.startswith("sk-prism-") and created.id
        async with AsyncPrism(api_key=created.key, base_url=setup.base_url) as team:
            answer = await team.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert answer.prism.provider == "up"
            listing = await admin.keys.list()
            assert created.key not in repr([k.to_dict() for k in listing])
            await admin.keys.revoke(created.id)
            with pytest.raises(prism.AuthenticationError):
                await team.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert [p.name for p in await admin.providers.list()] == ["up"]
        with pytest.raises(prism.PermissionDeniedError):
            async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url) as plain:
                await plain.keys.list()


async def test_a_virtual_key_with_a_budget(setup: Setup) -> None:
    setup.mock.prompt_tokens, setup.mock.completion_tokens = 1000, 100  # $0.003 a request
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key=ADMIN_TOKEN) as admin:
        created = await admin.keys.create(name="async-agent", budget={"limit": 0.002, "period": "total"},
                                          metadata={"run": 7}, expires_at="2099-01-01")
        assert created.budget is not None and created.budget.period == "total" and created.expires_at == 4070908800
        async with AsyncPrism(api_key=created.key, base_url=setup.base_url) as agent:
            await agent.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(prism.BudgetExceededError) as caught:
                await agent.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert caught.value.code == "budget_exceeded"
        assert len(setup.mock.chat_requests()) == 1
        details = await admin.keys.get(created.id or "")
        assert details.metadata == {"run": 7} and details.spend is not None and details.spend.budget is not None
        assert details.spend.budget.spent_usd == pytest.approx(0.003) and details.spend.budget.resets_at_ms is None
        budgets = await admin.budgets.list()
        assert [(b.scope, b.name, b.remaining_usd) for b in budgets] == [("key", "async-agent", 0)]
