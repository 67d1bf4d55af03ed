"""Pieces without a gateway: URLs, the extras parser, credentials."""

from __future__ import annotations

import pickle

import pytest

import prism
from prism import Prism, PrismExtras


@pytest.mark.parametrize("given,root", [
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://localhost:8080/", "http://localhost:8080"),
    ("http://localhost:8080/v1", "http://localhost:8080"),
    ("http://localhost:8080/v1/", "http://localhost:8080"),
    ("https://example.com/prism/v1", "https://example.com/prism"),
])
def test_gateway_root(given: str, root: str) -> None:
    assert prism.gateway_root(given) == root
    assert str(Prism(api_key="k", base_url=given).base_url) == root + "/v1/"


def test_the_default_gateway_is_make_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRISM_BASE_URL", raising=False)
    monkeypatch.delenv("PRISM_CONTROL_PLANE_URL", raising=False)
    client = Prism(api_key="k")
    assert str(client.base_url) == "http://localhost:8080/v1/" and client.control_plane_url == "http://localhost:8080"


def test_a_key_is_required_and_openais_is_never_borrowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRISM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key-must-stay-home")
    with pytest.raises(prism.PrismError, match="PRISM_API_KEY"):
        Prism()
    with pytest.raises(prism.PrismError):
        prism.AsyncPrism(base_url="http://localhost:8080")


def test_extras_from_headers() -> None:
    extras = PrismExtras.from_headers({
        "X-Prism-Provider": "anthropic", "x-prism-model-used": "claude-sonnet-4-20250514",
        "x-prism-latency-ms": "12.5", "x-prism-cost": "0.0034", "x-prism-cache": "miss",
        "x-prism-request-id": "req-1", "x-prism-fallback-used": "true", "x-prism-routing-strategy": "weighted",
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s", "x-prism-new-thing": "x", "content-type": "application/json"})
    assert (extras.provider, extras.model_used, extras.latency_ms, extras.cost, extras.cache, extras.request_id,
            extras.fallback_used, extras.routing_strategy) == (
        "anthropic", "claude-sonnet-4-20250514", 12.5, 0.0034, "miss", "req-1", True, "weighted")
    assert extras.ratelimit == prism.RateLimitInfo(limit_requests=60, remaining_requests=59, reset_requests="1s")
    assert extras.headers["x-prism-new-thing"] == "x" and "content-type" not in extras.headers
    assert pickle.loads(pickle.dumps(extras)) == extras


def test_extras_tolerate_missing_and_odd_headers() -> None:
    extras = PrismExtras.from_headers({"x-prism-latency-ms": "soon", "x-prism-cost": ""})
    assert extras == PrismExtras(headers={"x-prism-latency-ms": "soon", "x-prism-cost": ""})
    assert extras.provider is None and extras.latency_ms is None and extras.cost is None
    assert not extras.fallback_used


def test_extras_of_a_foreign_object() -> None:
    with pytest.raises(TypeError, match="Prism client"):
        prism.extras(object())


def test_everything_exported_exists() -> None:
    for name in prism.__all__:
        assert hasattr(prism, name), name
    assert prism.__version__
