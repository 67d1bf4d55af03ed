"""`client.org_configs` against the real gateway's organizations: configs stored through the client,
a key of each organization served by that organization's own provider (its own mock upstream)
while a key from config.yaml keeps the file's, configs replaced and listed, provider secrets never
in an answer, and deleting an organization revoking its keys. Sync and async."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import openai
import pytest

import prism
from prism import AsyncPrism, Prism

from conftest import ADMIN_TOKEN, CLIENT_KEY, Setup

ACME_SECRET = "sk-live-acme-upstream-secret-7a6b5c4d"
GLOBEX_SECRET = "sk-live-globex-upstream-secret-1e2f3a4b"
NEW_SECRET = "sk-live-acme-rotated-secret-0c9d8e7f"
SECRETS = (ACME_SECRET, GLOBEX_SECRET, NEW_SECRET)


def org_config(mock: Any, secret: str, models: Sequence[str] = ("gpt-4o-mini", "gpt-4o"),
               **sections: Any) -> dict[str, Any]:
    return {"providers": {"openai": {"api_key": secret, "api_format": "openai", "base_url": mock.v1_url,
                                     "models": list(models)}}, **sections}


def labelled_mock(make_mock: Any, label: str) -> Any:
    mock = make_mock()
    mock.content_pieces = [f"answer from {label}"]
    return mock


def admin_client(setup: Setup) -> Prism:
    return Prism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key=ADMIN_TOKEN)


def ask(client: Prism, model: str = "gpt-4o-mini") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def counts(*mocks: Any) -> tuple[int, ...]:
    return tuple(len(m.chat_requests()) for m in mocks)


def assert_no_secret(answers: Iterable[Any]) -> None:
    for answer in answers:
        text = answer.to_json() if isinstance(answer, openai.BaseModel) else repr(answer)
        for secret in SECRETS:
            assert secret not in text, text


def test_each_organizations_key_is_served_by_its_own_provider(setup: Setup, make_mock: Any) -> None:
    acme_mock, globex_mock = labelled_mock(make_mock, "acme"), labelled_mock(make_mock, "globex")
    file_mock = setup.mock
    with admin_client(setup) as admin:
        acme = admin.org_configs.create("acme", org_config(acme_mock, ACME_SECRET))
        globex = admin.org_configs.create(org_id="globex", config=org_config(globex_mock, GLOBEX_SECRET,
                                                                              models=["gpt-4o-mini"]))
        assert isinstance(acme, prism.OrgConfig) and acme.org_id == "acme" and globex.org_id == "globex"
        assert acme.config is not None
        shown = acme.config["providers"]["openai"]
        assert shown["models"] == ["gpt-4o-mini", "gpt-4o"] and shown["base_url"] == acme_mock.v1_url
        assert shown["api_key"].endswith(ACME_SECRET[-4:])  # masked: sk-…4b4d

        # A key for each organization, by either route.
        acme_key = admin.org_configs.create_key("acme", name="acme-key", owner="acme-ops",
                                                metadata={"tier": "gold"})
        globex_key = admin.keys.create(name="globex-key", org="globex")
        assert isinstance(acme_key, prism.CreatedKey) and acme_key.org == "acme" and acme_key.owner == "acme-ops"
        assert acme_key.metadata == {"tier": "gold"}
        assert globex_key.org == "globex" and globex_key.key.startswith("sk-prism-")

        with Prism(api_key=acme_key.key, base_url=setup.base_url) as acme_client, \
                Prism(api_key=globex_key.key, base_url=setup.base_url) as globex_client:
            answer = ask(acme_client)
            assert answer.choices[0].message.content == "answer from acme"
            assert answer.prism.provider == "openai"
            assert counts(acme_mock, globex_mock, file_mock) == (1, 0, 0)
            # The organization's provider got the organization's upstream key.
            assert acme_mock.last_chat().headers["authorization"] == f"Bearer {ACME_SECRET}"

            answer = ask(globex_client)
            assert answer.choices[0].message.content == "answer from globex" and answer.prism.provider == "openai"
            assert counts(acme_mock, globex_mock, file_mock) == (1, 1, 0)
            assert globex_mock.last_chat().headers["authorization"] == f"Bearer {GLOBEX_SECRET}"

            # A key from config.yaml keeps the file's provider.
            answer = ask(admin)
            assert answer.prism.provider == "up" and answer.choices[0].message.content == file_mock.content
            assert counts(acme_mock, globex_mock, file_mock) == (1, 1, 1)

            # Each organization sees its own models only.
            assert [m.id for m in globex_client.models.list()] == ["gpt-4o-mini"]
            assert {m.id for m in acme_client.models.list()} == {"gpt-4o-mini", "gpt-4o"}
            # The file's provider is not the organization's: `up/…` names nothing it has.
            assert ask(admin, model="up/gpt-4o-mini").prism.provider == "up"
            with pytest.raises(prism.NotFoundError) as caught:
                ask(acme_client, model="up/gpt-4o-mini")
            assert caught.value.code == "model_not_found"
            assert counts(acme_mock, globex_mock, file_mock) == (1, 1, 2)

        listed = admin.org_configs.list()
        assert all(isinstance(o, prism.OrgSummary) for o in listed)
        assert {o.org_id: (o.providers, o.keys, o.serving) for o in listed} == {
            "acme": (["openai"], 1, True), "globex": (["openai"], 1, True)}

        fetched = admin.org_configs.get("acme")
        assert fetched.org_id == "acme" and fetched.config == acme.config
        assert isinstance(fetched.updated_at, int) and fetched.updated_at > 0
        assert fetched.keys is not None and [(k.name, k.org, k.id) for k in fetched.keys] == [
            ("acme-key", "acme", acme_key.id)]
        assert isinstance(fetched.keys[0], prism.KeyInfo) and acme_key.key not in fetched.to_json()
        assert admin.org_configs.retrieve("globex").config == globex.config

        # The raw upstream keys never come back, in any answer.
        assert_no_secret([acme, globex, acme_key, globex_key, fetched, *listed, *admin.keys.list(),
                          admin.keys.get(acme_key.id or ""), admin.org_configs.get("globex"),
                          admin.control_plane.request("GET", "/-/config")])


def test_an_updated_config_is_used_at_once_and_a_refused_one_changes_nothing(setup: Setup, make_mock: Any) -> None:
    first, second = labelled_mock(make_mock, "first"), labelled_mock(make_mock, "second")
    with admin_client(setup) as admin:
        admin.org_configs.create("acme", org_config(first, ACME_SECRET))
        raw = admin.org_configs.create_key("acme", name="acme-key").key
        with Prism(api_key=raw, base_url=setup.base_url) as acme:
            assert ask(acme).choices[0].message.content == "answer from first"
            with pytest.raises(prism.NotFoundError):
                ask(acme, model="acme-special")

            updated = admin.org_configs.update("acme", org_config(second, NEW_SECRET,
                                                                  models=["gpt-4o-mini", "acme-special"]))
            assert updated.org_id == "acme" and updated.config is not None
            assert updated.config["providers"]["openai"]["models"] == ["gpt-4o-mini", "acme-special"]
            assert_no_secret([updated])

            assert ask(acme).choices[0].message.content == "answer from second"
            special = ask(acme, model="acme-special")
            assert special.choices[0].message.content == "answer from second"
            assert counts(first, second) == (1, 2)
            assert second.last_chat().headers["authorization"] == f"Bearer {NEW_SECRET}"
            # The key outlives the change of config.
            assert [k.name for k in admin.org_configs.get("acme").keys or []] == ["acme-key"]

            # A config the gateway refuses is not stored: the organization keeps serving the last one.
            with pytest.raises(prism.BadRequestError) as caught:
                admin.org_configs.update("acme", {"routing": {}})
            assert caught.value.code == "invalid_org_config" and "providers" in str(caught.value)
            with pytest.raises(prism.BadRequestError):
                admin.org_configs.update("acme", {"server": {"port": 1}, **org_config(first, ACME_SECRET)})
            assert ask(acme).choices[0].message.content == "answer from second"
            assert counts(first, second) == (1, 3)


def test_deleting_an_organization_revokes_its_keys(setup: Setup, make_mock: Any) -> None:
    acme_mock = labelled_mock(make_mock, "acme")
    with admin_client(setup) as admin:
        admin.org_configs.create("acme", org_config(acme_mock, ACME_SECRET))
        first = admin.org_configs.create_key("acme", name="acme-1")
        second = admin.keys.create(name="acme-2", org="acme", models=["gpt-4o-mini"])
        clients = [Prism(api_key=k.key, base_url=setup.base_url, max_retries=0) for k in (first, second)]
        for client in clients:
            assert ask(client).prism.provider == "openai"
        assert counts(acme_mock) == (2,)

        deleted = admin.org_configs.delete("acme")
        assert isinstance(deleted, prism.OrgDeleted)
        assert (deleted.deleted, deleted.keys_revoked) == ("acme", 2)
        for client in clients:
            with pytest.raises(prism.AuthenticationError) as caught:
                ask(client)
            assert caught.value.code == "invalid_api_key" and caught.value.status_code == 401
            client.close()
        assert counts(acme_mock) == (2,)

        assert admin.org_configs.list() == []
        with pytest.raises(prism.NotFoundError) as missing:
            admin.org_configs.get("acme")
        assert missing.value.code == "org_not_found"
        with pytest.raises(prism.NotFoundError):
            admin.org_configs.delete("acme")
        with pytest.raises(prism.NotFoundError) as no_org:
            admin.org_configs.create_key("acme", name="too-late")
        assert no_org.value.code == "org_not_found"
        revoked = {k.id: k for k in admin.keys.list()}
        assert revoked[first.id].revoked_at and revoked[second.id].revoked_at
        # The file's keys are untouched.
        assert ask(admin).prism.provider == "up"


# ---- async ---------------------------------------------------------------------------------------

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_async_organizations(setup: Setup, make_mock: Any) -> None:
    acme_mock, globex_mock = labelled_mock(make_mock, "acme"), labelled_mock(make_mock, "globex")
    moved = labelled_mock(make_mock, "moved")
    messages: Any = [{"role": "user", "content": "hi"}]
    async with AsyncPrism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key=ADMIN_TOKEN) as admin:
        created = await admin.org_configs.create("acme", org_config(acme_mock, ACME_SECRET))
        await admin.org_configs.create("globex", org_config(globex_mock, GLOBEX_SECRET))
        assert created.org_id == "acme"
        acme_key = await admin.org_configs.create_key("acme", name="acme-async")
        globex_key = await admin.keys.create(name="globex-async", org="globex")
        assert (acme_key.org, globex_key.org) == ("acme", "globex")

        async with AsyncPrism(api_key=acme_key.key, base_url=setup.base_url) as acme, \
                AsyncPrism(api_key=globex_key.key, base_url=setup.base_url, max_retries=0) as globex:
            answer = await acme.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert answer.choices[0].message.content == "answer from acme"
            answer = await globex.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert answer.choices[0].message.content == "answer from globex"
            answer = await admin.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert answer.prism.provider == "up"
            assert counts(acme_mock, globex_mock, setup.mock) == (1, 1, 1)

            listed = await admin.org_configs.list()
            assert sorted((o.org_id, o.keys) for o in listed) == [("acme", 1), ("globex", 1)]
            fetched = await admin.org_configs.get("acme")
            assert [k.name for k in fetched.keys or []] == ["acme-async"]
            assert_no_secret([created, fetched, acme_key, globex_key, *listed])

            await admin.org_configs.update("acme", org_config(moved, NEW_SECRET))
            answer = await acme.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert answer.choices[0].message.content == "answer from moved"
            assert counts(acme_mock, moved) == (1, 1)

            deleted = await admin.org_configs.delete("globex")
            assert (deleted.deleted, deleted.keys_revoked) == ("globex", 1)
            with pytest.raises(prism.AuthenticationError):
                await globex.chat.completions.create(model="gpt-4o-mini", messages=messages)
            # The other organization goes on.
            answer = await acme.chat.completions.create(model="gpt-4o-mini", messages=messages)
            assert answer.choices[0].message.content == "answer from moved"
        assert [o.org_id for o in await admin.org_configs.list()] == ["acme"]
