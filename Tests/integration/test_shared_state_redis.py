"""Rate limits and the cache shared by several gateway processes through a real redis-server:
limits hold exactly across replicas, a cached answer is a hit on every replica, and when Redis
goes away the limiter falls back to local counters and the cache is skipped, both with a warning,
until Redis is back."""

import concurrent.futures
import json

import pytest

from prism_helpers import (assert_openai_error, chat_body, get, make_config, openai_provider, post,
                           wait_until)
from redis_server import RedisServer

KEY = "sk-prism-shared-client"


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def shared_config(upstream, redis, *, global_rpm=0, rpm=0, cache=True, password=None):
    redis_section = {"enabled": True, "address": redis.address, "prefix": "prism-test:", "timeout": "300ms"}
    if password:
        redis_section["password"] = password
    return make_config({"mockai": openai_provider(upstream.v1_url)},
                       auth={"enabled": True, "keys": [{"name": "shared", "key": KEY, "rate_limit_rpm": rpm}]},
                       rate_limiting={"enabled": True, "global_rpm": global_rpm},
                       cache={"enabled": cache, "default_ttl": "5m"}, redis=redis_section,
                       server={"operational_routes": "public"})


def chat(gw, content="hello", headers=None):
    hdrs = {"Authorization": f"Bearer {KEY}"}
    hdrs.update(headers or {})
    return post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", content), headers=hdrs)


def test_two_gateways_hold_a_global_limit_exactly(gateway, mock_upstream, redis):
    cfg = shared_config(mock_upstream, redis, global_rpm=15, cache=False)
    first, second = gateway(cfg), gateway(cfg)
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda i: chat(first if i % 2 else second, f"q{i}").status, range(48)))
    assert statuses.count(200) == 15, statuses
    assert statuses.count(429) == 33
    assert len(mock_upstream.chat_requests()) == 15
    # The counters live in Redis under the configured prefix.
    assert any(key.startswith("prism-test:") and "requests:*" in key for key in redis.keys())


def test_per_key_limit_is_shared_too(gateway, mock_upstream, redis):
    cfg = shared_config(mock_upstream, redis, rpm=4, cache=False)
    first, second = gateway(cfg), gateway(cfg)
    statuses = [chat(gw, f"k{i}").status for i, gw in enumerate([first, second] * 3)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    refused = chat(first)
    assert_openai_error(refused, 429, code="rate_limit_exceeded")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_an_answer_cached_through_one_gateway_is_a_hit_on_the_other(gateway, mock_upstream, redis):
    cfg = shared_config(mock_upstream, redis)
    first, second = gateway(cfg), gateway(cfg)
    miss = chat(first, "shared question")
    assert miss.headers["x-prism-cache"] == "miss"
    assert wait_until(lambda: any(":chat.completions:" in key for key in redis.keys()), 5)
    hit = chat(second, "shared question")
    assert hit.headers["x-prism-cache"] == "hit"
    assert hit.json() == miss.json()
    assert len(mock_upstream.chat_requests()) == 1


def test_redis_outage_falls_back_and_recovers(gateway, mock_upstream, redis):
    gw = gateway(shared_config(mock_upstream, redis, rpm=100))
    assert chat(gw, "before").headers["x-prism-cache"] == "miss"
    redis.stop()
    down = chat(gw, "during")
    # Still answered: the limiter counts locally, the cache is skipped.
    assert down.status == 200
    assert down.headers["x-prism-cache"] == "skip"
    assert "x-ratelimit-remaining-requests" in down.headers
    gw.wait_for_log(r"warning.*redis at 127\.0\.0\.1:\d+ unreachable")
    health = json.loads(get(gw.url("/-/health/state")).body)
    assert health["backend"] == "redis" and health["connected"] is False
    assert health["local_rate_limit_checks"] >= 1 and health["unavailable_answers"] >= 1
    # Local limits still hold while Redis is down.
    redis.start()
    gw.wait_for_log(r"redis at 127\.0\.0\.1:\d+ reachable again", timeout=10)
    assert chat(gw, "after").headers["x-prism-cache"] == "miss"
    assert chat(gw, "after").headers["x-prism-cache"] == "hit"
    assert json.loads(get(gw.url("/-/health/state")).body)["connected"] is True


def test_local_fallback_still_limits(gateway, mock_upstream, redis):
    gw = gateway(shared_config(mock_upstream, redis, rpm=3, cache=False))
    redis.stop()
    assert [chat(gw, f"x{i}").status for i in range(4)] == [200, 200, 200, 429]


def test_gateway_starts_while_redis_is_down(gateway, mock_upstream, redis):
    redis.stop()
    gw = gateway(shared_config(mock_upstream, redis, rpm=10))
    answer = chat(gw)
    assert answer.status == 200 and answer.headers["x-prism-cache"] == "skip"
    redis.start()
    gw.wait_for_log(r"redis at 127\.0\.0\.1:\d+ reachable again", timeout=10)
    assert chat(gw).headers["x-prism-cache"] == "miss"


def test_password_protected_redis(gateway, mock_upstream, tmp_path):
    server = RedisServer(tmp_path, password="s3cret-redis-pass").start()
    try:
        gw = gateway(shared_config(mock_upstream, server, password="${REDIS_TEST_PASSWORD}"),
                     env={"REDIS_TEST_PASSWORD": "s3cret-redis-pass"})
        assert chat(gw, "auth").headers["x-prism-cache"] == "miss"
        assert chat(gw, "auth").headers["x-prism-cache"] == "hit"
        assert "s3cret-redis-pass" not in gw.log()
    finally:
        server.stop()
