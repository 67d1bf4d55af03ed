"""Typed errors: Prism's classes on both surfaces, subclasses of openai's."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

import prism
from prism import Prism
from prism_helpers import free_port

from conftest import ADMIN_TOKEN, CLIENT_KEY, OTHER_KEY, Setup


def ask(client: Prism, model: str = "gpt-4o-mini") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_the_hierarchy() -> None:
    assert prism.PrismError is openai.OpenAIError
    for cls, base in [(prism.BadRequestError, openai.BadRequestError),
                      (prism.AuthenticationError, openai.AuthenticationError),
                      (prism.PermissionDeniedError, openai.PermissionDeniedError),
                      (prism.NotFoundError, openai.NotFoundError),
                      (prism.ConflictError, openai.ConflictError),
                      (prism.UnprocessableEntityError, openai.UnprocessableEntityError),
                      (prism.RateLimitError, openai.RateLimitError),
                      (prism.InternalServerError, openai.InternalServerError)]:
        assert issubclass(cls, base) and issubclass(cls, prism.APIStatusError) and issubclass(cls, prism.PrismError)
    assert issubclass(prism.BudgetExceededError, prism.RateLimitError)
    assert issubclass(prism.APITimeoutError, prism.APIConnectionError)


def test_an_unknown_key_is_an_authentication_error(setup: Setup) -> None:
    with Prism(api_key="sk-prism-not-a-key-000000000", base_url=setup.base_url) as client:
        with pytest.raises(prism.AuthenticationError) as caught:
            ask(client)
    err = caught.value
    assert isinstance(err, openai.AuthenticationError)
    assert err.status_code == 401 and err.code == "invalid_api_key" and err.type
    assert err.request_id and err.request_id == err.prism.request_id
    # openai strips the credentials from the request an error carries.
    assert "sk-prism-not-a-key" not in str(err) and "authorization" not in err.request.headers


def test_an_unknown_model_is_not_found(setup: Setup) -> None:
    with Prism(api_key=CLIENT_KEY, base_url=setup.base_url) as client:
        with pytest.raises(prism.NotFoundError) as caught:
            ask(client, model="no-such-model-anywhere")
        assert caught.value.code == "model_not_found"
        with pytest.raises(prism.NotFoundError):
            client.models.retrieve("no-such-model-anywhere")


def test_a_model_the_key_may_not_use_is_permission_denied(setup: Setup) -> None:
    with Prism(api_key=OTHER_KEY, base_url=setup.base_url) as client:
        with pytest.raises(prism.PermissionDeniedError) as caught:
            ask(client, model="gpt-4o")
    assert caught.value.code == "model_not_allowed"


def test_a_bad_request(setup: Setup) -> None:
    with Prism(api_key=CLIENT_KEY, base_url=setup.base_url) as client:
        with pytest.raises(prism.BadRequestError) as caught:
            ask(client, model="gpt-4o\nmini")
    assert caught.value.status_code == 400 and caught.value.code == "invalid_model"


def test_a_failing_provider_is_a_server_error_naming_it(setup: Setup) -> None:
    setup.mock.fail_with(500, "upstream broke")
    with Prism(api_key=CLIENT_KEY, base_url=setup.base_url, max_retries=0) as client:
        with pytest.raises(prism.InternalServerError) as caught:
            ask(client)
    err = caught.value
    assert err.status_code >= 500 and "upstream broke" in err.message
    assert err.prism.request_id


def test_a_spent_rate_limit(start_setup: Any) -> None:
    setup = start_setup(rate_limiting={"enabled": True},
                        extra_keys=[{"name": "rpm-key", "key": "sk-prism-rpm-key-for-tests-0005", "rate_limit_rpm": 1}])
    with Prism(api_key="sk-prism-rpm-key-for-tests-0005", base_url=setup.base_url, max_retries=0) as client:
        ask(client)
        with pytest.raises(prism.RateLimitError) as caught:
            ask(client)
    err = caught.value
    assert not isinstance(err, prism.BudgetExceededError)
    assert err.code == "rate_limit_exceeded" and err.response.headers.get("retry-after")
    assert err.prism.ratelimit.remaining_requests == 0


def _answering(status: int, body: dict[str, Any]) -> httpx2.MockTransport:
    return httpx2.MockTransport(lambda request: httpx2.Response(status, json=body))


def test_budget_exceeded_on_both_surfaces() -> None:
    body = {"error": {"message": "Budget of $10.00 per month spent", "type": "budget_exceeded",
                      "param": None, "code": "budget_exceeded"}}
    client = Prism(api_key="k", base_url="http://gateway.test", max_retries=0,
                   http_client=httpx2.Client(transport=_answering(429, body)),
                   control_plane_http_client=httpx2.Client(transport=_answering(429, body)))
    with pytest.raises(prism.BudgetExceededError) as caught:
        ask(client)
    assert isinstance(caught.value, openai.RateLimitError) and caught.value.code == "budget_exceeded"
    with pytest.raises(prism.BudgetExceededError):
        client.keys.list()


def test_a_spent_budget_is_not_retried() -> None:
    """openai retries every 429; a spent budget stays spent, so Prism's client asks once."""
    seen: list[httpx2.Request] = []
    budget = {"error": {"message": "spent", "type": "budget_exceeded", "param": None, "code": "budget_exceeded"}}
    rate = {"error": {"message": "slow down", "type": "rate_limit_exceeded", "param": None,
                      "code": "rate_limit_exceeded"}}

    def transport(body: dict[str, Any]) -> httpx2.MockTransport:
        def handle(request: httpx2.Request) -> httpx2.Response:
            seen.append(request)
            return httpx2.Response(429, json=body, headers={"retry-after-ms": "1"})
        return httpx2.MockTransport(handle)

    client = Prism(api_key="k", base_url="http://gateway.test", max_retries=2,
                   http_client=httpx2.Client(transport=transport(budget)))
    with pytest.raises(prism.BudgetExceededError):
        ask(client)
    assert len(seen) == 1
    seen.clear()
    client = Prism(api_key="k", base_url="http://gateway.test", max_retries=2,
                   http_client=httpx2.Client(transport=transport(rate)))
    with pytest.raises(prism.RateLimitError):
        ask(client)
    assert len(seen) == 3  # openai's own retries, untouched


def test_no_answer_is_a_connection_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with Prism(api_key="k", base_url=closed, max_retries=0, timeout=5) as client:
        with pytest.raises(prism.APIConnectionError):
            ask(client)
        with pytest.raises(prism.APIConnectionError):
            client.keys.list()


def test_admin_errors(setup: Setup, gateway: Any, mock_upstream: Any) -> None:
    admin = Prism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key=ADMIN_TOKEN)
    with pytest.raises(prism.NotFoundError) as not_found:
        admin.keys.revoke("key_doesNotExist")
    assert not_found.value.code == "key_not_found"
    with pytest.raises(prism.NotFoundError) as no_provider:
        admin.providers.get("nope")
    assert no_provider.value.code == "provider_not_found"
    with pytest.raises(prism.ConflictError) as conflict:
        admin.providers.delete("up")  # defined in config.yaml
    assert conflict.value.code == "provider_in_config_file"
    # A client key is no admin token (the seed's default: api_key doubles as the admin token).
    with Prism(api_key=CLIENT_KEY, base_url=setup.base_url) as plain:
        with pytest.raises(prism.PermissionDeniedError):
            plain.keys.list()
    with Prism(api_key=CLIENT_KEY, base_url=setup.base_url, admin_key="wrong-admin-token-000000") as wrong:
        with pytest.raises(prism.PermissionDeniedError) as denied:
            wrong.providers.list()
    assert denied.value.code == "invalid_admin_token"
    # A gateway without an admin token has no admin API.
    from prism_helpers import make_config, openai_provider
    off = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}), env={"PRISM_ADMIN_TOKEN": None})
    with Prism(api_key="k", base_url=off.base_url) as client:
        with pytest.raises(prism.NotFoundError) as admin_off:
            client.keys.list()
    assert admin_off.value.code == "admin_api_off"
    admin.close()
