"""The admin API's requests and answer shapes on a fake transport (the real gateway's
organizations are tested in test_orgs_live.py): `org_configs` (`PUT`/`GET`/`DELETE
/-/orgs/{org_id}/config`, ids as one path segment, lenient answers), the bodies `keys.create`
sends (expiry, budget, metadata, org), where the admin API is and which token it gets."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import httpx2
import pytest

import prism
from prism import AsyncPrism, Prism

CONFIG = {"providers": {"openai": {"api_key": "sk-your-openai-key", "api_format": "openai",
                                   "models": ["gpt-4o", "gpt-4o-mini"]}},
          "rate_limiting": {"enabled": True, "rpm": 500}}


class FakeControlPlane:
    """An org-config store behind httpx2.MockTransport; `answer` picks the reply shape."""

    def __init__(self, answer: str = "wrapped") -> None:
        self.requests: list[httpx2.Request] = []
        self.stored: dict[str, Any] = {}
        self.answer = answer
        self.fail: tuple[int, str] | None = None

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.fail:
            status, code = self.fail
            return httpx2.Response(status, json={"error": {"message": f"failed: {code}", "type": "invalid_request_error",
                                                           "param": None, "code": code}})
        _, _, rest = request.url.raw_path.decode().partition("/-/orgs/")
        org, _, tail = rest.partition("/")
        assert org and tail == "config", request.url
        if request.method == "PUT":
            self.stored[org] = json.loads(request.content)
        elif request.method == "DELETE":
            if self.stored.pop(org, None) is None:
                return self.not_found(org)
            return httpx2.Response(200, json={"deleted": org})
        if org not in self.stored:
            return self.not_found(org)
        if self.answer == "wrapped":
            return httpx2.Response(200, json={"org_id": org, "config": self.stored[org], "version": 3})
        if self.answer == "bare":
            return httpx2.Response(200, json=self.stored[org])
        return httpx2.Response(204)

    @staticmethod
    def not_found(org: str) -> httpx2.Response:
        return httpx2.Response(404, json={"error": {"message": f"No organization '{org}'.",
                                                    "type": "invalid_request_error", "param": None,
                                                    "code": "org_not_found"}})

    def sync_client(self, **kwargs: Any) -> Prism:
        kwargs.setdefault("api_key", "sk-prism-your-key")
        kwargs.setdefault("base_url", "https://gateway.example.com")
        return Prism(control_plane_http_client=httpx2.Client(transport=httpx2.MockTransport(self.handle)), **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncPrism:
        kwargs.setdefault("api_key", "sk-prism-your-key")
        kwargs.setdefault("base_url", "https://gateway.example.com")
        return AsyncPrism(control_plane_http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle)),
                          **kwargs)


@pytest.mark.parametrize("answer", ["wrapped", "bare", "empty"])
def test_create_get_update_delete(answer: str) -> None:
    fake = FakeControlPlane(answer)
    client = fake.sync_client(control_plane_url="https://control.example.com")

    created = client.org_configs.create(org_id="acme", config=CONFIG)
    assert isinstance(created, prism.OrgConfig) and created.org_id == "acme" and created.config == CONFIG
    put = fake.requests[-1]
    assert (put.method, str(put.url)) == ("PUT", "https://control.example.com/-/orgs/acme/config")
    assert put.headers["authorization"] == "Bearer sk-prism-your-key"
    assert json.loads(put.content) == CONFIG

    if answer != "empty":
        fetched = client.org_configs.get("acme")
        assert fetched.config == CONFIG and fetched.org_id == "acme"
        assert client.org_configs.retrieve("acme").config == CONFIG
        assert (fake.requests[-1].method, fake.requests[-1].url.path) == ("GET", "/-/orgs/acme/config")
        if answer == "wrapped":
            assert fetched.to_dict()["version"] == 3  # fields newer than the client are kept

    changed = {**CONFIG, "cache": {"enabled": True}}
    updated = client.org_configs.update("acme", changed)
    assert updated.config == changed and fake.requests[-1].method == "PUT"
    assert fake.stored["acme"] == changed

    deleted = client.org_configs.delete("acme")
    assert isinstance(deleted, prism.OrgDeleted) and deleted.deleted == "acme" and deleted.keys_revoked is None
    assert (fake.requests[-1].method, fake.requests[-1].url.path) == ("DELETE", "/-/orgs/acme/config")
    with pytest.raises(prism.NotFoundError) as caught:
        client.org_configs.get("acme")
    assert caught.value.code == "org_not_found" and caught.value.status_code == 404


def test_an_org_id_is_one_path_segment() -> None:
    fake = FakeControlPlane()
    client = fake.sync_client()
    client.org_configs.create("team/../x?y#z", {"cache": {"enabled": False}})
    assert fake.requests[-1].url.raw_path == b"/-/orgs/team%2F..%2Fx%3Fy%23z/config"
    with pytest.raises(ValueError):
        client.org_configs.get("")


@pytest.mark.parametrize("status,cls", [(401, prism.AuthenticationError), (403, prism.PermissionDeniedError),
                                        (400, prism.BadRequestError), (409, prism.ConflictError),
                                        (422, prism.UnprocessableEntityError), (503, prism.InternalServerError)])
def test_errors_are_typed(status: int, cls: type[Exception]) -> None:
    fake = FakeControlPlane()
    fake.fail = (status, "some_code")
    with pytest.raises(cls) as caught:
        fake.sync_client().org_configs.create("acme", CONFIG)
    assert isinstance(caught.value, prism.APIStatusError) and caught.value.code == "some_code"
    assert "failed: some_code" in str(caught.value)


def test_an_answer_of_the_wrong_shape() -> None:
    client = Prism(api_key="k", base_url="http://gateway.test", control_plane_http_client=httpx2.Client(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=["not", "an", "object"]))))
    with pytest.raises(prism.APIResponseValidationError):
        client.keys.list()
    with pytest.raises(prism.APIResponseValidationError):
        client.keys.create(name="x")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_org_configs(anyio_backend: str) -> None:
    fake = FakeControlPlane()
    async with fake.async_client(control_plane_url="https://control.example.com/") as client:
        created = await client.org_configs.create(org_id="acme", config=CONFIG)
        assert created.config == CONFIG
        assert str(fake.requests[-1].url) == "https://control.example.com/-/orgs/acme/config"
        assert (await client.org_configs.get("acme")).config == CONFIG
        assert (await client.org_configs.update("acme", {"cache": {}})).config == {"cache": {}}
        assert (await client.org_configs.delete("acme")).deleted == "acme"
        with pytest.raises(prism.NotFoundError):
            await client.org_configs.retrieve("acme")
    assert [r.method for r in fake.requests] == ["PUT", "GET", "PUT", "DELETE", "GET"]


# ---- what keys.create and org_configs.create_key send --------------------------------------------

def recording_client() -> tuple[Prism, list[httpx2.Request]]:
    sent: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(201, json={"id": "key_x", "name": "k", "key": "sk-prism-new",
                                          **json.loads(request.content)})

    return Prism(api_key="k", base_url="http://gateway.test",
                 control_plane_http_client=httpx2.Client(transport=httpx2.MockTransport(handle))), sent


@pytest.mark.parametrize("given,sent", [
    (1_900_000_000, 1_900_000_000),
    (1_900_000_000.9, 1_900_000_000),
    ("2027-01-31", "2027-01-31"),
    ("2027-01-31T12:00:00Z", "2027-01-31T12:00:00Z"),
    (date(2027, 1, 31), "2027-01-31"),
    (datetime(2027, 1, 31, 12, 0, tzinfo=timezone.utc), 1801396800),
    (datetime(2027, 1, 31, 12, 0), 1801396800),  # naive: UTC, as the gateway takes its ISO dates
    (datetime(2027, 1, 31, 13, 0, tzinfo=timezone(timedelta(hours=1))), 1801396800),
])
def test_expires_at_in_every_spelling(given: Any, sent: Any) -> None:
    client, requests = recording_client()
    client.keys.create(name="k", expires_at=given)
    assert json.loads(requests[-1].content) == {"name": "k", "expires_at": sent}


def test_a_key_body_with_everything() -> None:
    client, requests = recording_client()
    created = client.keys.create(name="k", owner="team", models=["gpt-4o"], rate_limit_rpm=5, rate_limit_tpm=0,
                                 budget={"limit": 2.5, "period": "weekly", "hard": False},
                                 metadata={"a": [1, 2]}, org="acme", extra_body={"future": True})
    assert json.loads(requests[-1].content) == {
        "name": "k", "owner": "team", "models": ["gpt-4o"], "rate_limit_rpm": 5, "rate_limit_tpm": 0,
        "budget": {"limit": 2.5, "period": "weekly", "hard": False}, "metadata": {"a": [1, 2]}, "org": "acme",
        "future": True}
    assert (requests[-1].method, requests[-1].url.path) == ("POST", "/-/keys")
    assert isinstance(created.budget, prism.KeyBudget) and created.budget.hard is False and created.org == "acme"
    # A stored budget can be given back as it is.
    client.keys.create(name="again", budget=created.budget)
    assert json.loads(requests[-1].content)["budget"] == {"limit": 2.5, "period": "weekly", "hard": False}

    client.org_configs.create_key("team/x", name="k2", budget={"limit": 1})
    assert requests[-1].url.raw_path == b"/-/orgs/team%2Fx/keys"
    assert json.loads(requests[-1].content) == {"name": "k2", "budget": {"limit": 1}}


@pytest.mark.parametrize("kwargs", [{"expires_at": True}, {"expires_at": [1]}, {"budget": 5},
                                    {"metadata": ["not", "an", "object"]}, {"models": "gpt-4o"}])
def test_bad_key_arguments_are_refused_before_sending(kwargs: dict[str, Any]) -> None:
    client, requests = recording_client()
    with pytest.raises(TypeError):
        client.keys.create(name="k", **kwargs)
    assert requests == []


# ---- where the admin API is, and which token it gets ---------------------------------------------

def sent_to(make: Callable[..., Prism], **kwargs: Any) -> httpx2.Request:
    fake = FakeControlPlane()
    client = make(fake, **kwargs)
    client.org_configs.create("o", {})
    return fake.requests[-1]


def test_control_plane_url_defaults_to_the_gateway() -> None:
    request = sent_to(FakeControlPlane.sync_client, base_url="http://localhost:8080/v1")
    assert str(request.url) == "http://localhost:8080/-/orgs/o/config"
    request = sent_to(FakeControlPlane.sync_client, base_url="https://host.example/prism/")
    assert str(request.url) == "https://host.example/prism/-/orgs/o/config"


def test_admin_key_wins_over_api_key_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sent_to(FakeControlPlane.sync_client).headers["authorization"] == "Bearer sk-prism-your-key"
    monkeypatch.setenv("PRISM_ADMIN_TOKEN", "admin-from-env-0000000000")
    assert sent_to(FakeControlPlane.sync_client).headers["authorization"] == "Bearer admin-from-env-0000000000"
    request = sent_to(FakeControlPlane.sync_client, admin_key="admin-given-00000000000")
    assert request.headers["authorization"] == "Bearer admin-given-00000000000"


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRISM_API_KEY", "sk-prism-from-env")
    monkeypatch.setenv("PRISM_BASE_URL", "http://gw.internal:9000")
    monkeypatch.setenv("PRISM_CONTROL_PLANE_URL", "http://control.internal")
    fake = FakeControlPlane()
    client = Prism(control_plane_http_client=httpx2.Client(transport=httpx2.MockTransport(fake.handle)))
    assert client.api_key == "sk-prism-from-env" and str(client.base_url) == "http://gw.internal:9000/v1/"
    client.org_configs.create("o", {})
    assert str(fake.requests[-1].url) == "http://control.internal/-/orgs/o/config"
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-prism-from-env"


def test_with_options_keeps_prisms_settings() -> None:
    fake = FakeControlPlane()
    client = fake.sync_client(control_plane_url="https://control.example.com", admin_key="admin-given-00000000000")
    copy = client.with_options(timeout=3, max_retries=1)
    assert isinstance(copy, Prism) and copy.timeout == 3 and copy.max_retries == 1
    assert copy.control_plane_url == "https://control.example.com"
    assert str(copy.base_url) == "https://gateway.example.com/v1/"
    copy.org_configs.create("o", {})
    assert str(fake.requests[-1].url) == "https://control.example.com/-/orgs/o/config"
    assert fake.requests[-1].headers["authorization"] == "Bearer admin-given-00000000000"
    # Without an admin key of its own, a copy with another api_key uses that one.
    other = fake.sync_client().with_options(api_key="sk-prism-other-key")
    other.org_configs.create("o", {})
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-prism-other-key"
