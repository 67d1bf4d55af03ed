"""The two snippets of issue 18, verbatim.

Seed 1 runs against the real gateway at the address it hardcodes (localhost:8080, key
sk-prism-my-key-here). Seed 2 names example.com hosts: it runs unchanged with the admin API's HTTP
transport replaced by a fake that records what the client sent (the same calls against the real
gateway's organizations: test_orgs_live.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

import prism._control


def test_seed_1_chat_against_the_local_gateway(gateway_on_8080: Any, mock_upstream: Any) -> None:
    from prism import Prism
    client = Prism(api_key="sk-prism-my-key-here", base_url="http://localhost:8080")
    response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}])

    assert response.choices[0].message.content == mock_upstream.content
    assert response.prism.provider == "openai" and response.prism.model_used == "gpt-4o"
    assert response.prism.request_id and response.prism.latency_ms is not None
    # The gateway saw the key and appended nothing else: the client went to /v1 itself.
    gateway_on_8080.wait_for_log(r"request id=\S+ key=my-key owner=dev-team")
    assert mock_upstream.last_chat().body["messages"] == [{"role": "user", "content": "Hello!"}]
    client.close()


@pytest.fixture
def control_requests(monkeypatch: pytest.MonkeyPatch) -> list[httpx2.Request]:
    """Every admin-API request a Prism client makes, answered by a fake org-config store."""
    sent: list[httpx2.Request] = []
    stored: dict[str, Any] = {}

    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        org = request.url.path.split("/")[3]
        if request.method == "PUT":
            stored[org] = json.loads(request.content)
            return httpx2.Response(200, json={"org_id": org, "config": stored[org]})
        if request.method == "GET" and org in stored:
            return httpx2.Response(200, json={"org_id": org, "config": stored[org]})
        return httpx2.Response(404, json={"error": {"message": "no such org", "type": "invalid_request_error",
                                                    "param": None, "code": "org_not_found"}})

    monkeypatch.setattr(prism._control, "_new_http_client",
                        lambda timeout: httpx2.Client(transport=httpx2.MockTransport(handle), timeout=timeout))
    return sent


def test_seed_2_org_config_against_the_control_plane(control_requests: list[httpx2.Request]) -> None:
    from prism import Prism
    client = Prism(api_key="sk-prism-your-key", base_url="https://gateway.example.com", control_plane_url="https://control.example.com")
    client.org_configs.create(org_id="your-org-id", config={"providers": {"openai": {"api_key": "sk-your-openai-key", "api_format": "openai", "models": ["gpt-4o", "gpt-4o-mini"]}}})

    [request] = control_requests
    assert request.method == "PUT"
    assert str(request.url) == "https://control.example.com/-/orgs/your-org-id/config"
    assert request.headers["authorization"] == "Bearer sk-prism-your-key"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"providers": {"openai": {
        "api_key": "sk-your-openai-key", "api_format": "openai", "models": ["gpt-4o", "gpt-4o-mini"]}}}
    # The OpenAI surface of the same client is the gateway's /v1.
    assert str(client.base_url) == "https://gateway.example.com/v1/"
    assert client.org_configs.get("your-org-id").config == json.loads(request.content)
