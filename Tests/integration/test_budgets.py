"""Budgets: hard budgets refuse the request after the one that spent them (429 budget_exceeded),
soft ones warn in the log and a metric; every scope (org, team = the key's owner, user, key,
model, and `*` for each one not named); two gateways on one real redis-server hold one budget
exactly; virtual keys from the admin API with a budget, an expiry and metadata, and GET
/-/keys/{id} with what the key spent. (Period boundaries are unit-tested with an injected clock:
Tests/PrismCoreTests/BudgetTests.swift.)"""

import re
import time

import pytest

from conftest import give_to_gateway
from prism_helpers import assert_openai_error, chat_body, get, make_config, openai_provider, post, request
from redis_server import RedisServer

ADMIN = "admin-token-for-budgets-01"
# 1000 prompt + 100 completion tokens at $2 / $10 per million: $0.003 a request.
PRICES = {"custom_pricing": {"gpt-4o-mini": {"input_per_mtok": 2, "output_per_mtok": 10},
                             "gpt-4o": {"input_per_mtok": 2, "output_per_mtok": 10}}}
KEYS = {"enabled": True, "keys": [
    {"name": "alice", "key": "sk-prism-budget-alice-001", "owner": "team-a"},
    {"name": "bob", "key": "sk-prism-budget-bob-00001", "owner": "team-b"},
    {"name": "carol", "key": "sk-prism-budget-carol-001", "owner": "team-a"},
]}
ALICE, BOB, CAROL = (k["key"] for k in KEYS["keys"])


def config(mock, budgets, **extra):
    mock.prompt_tokens, mock.completion_tokens = 1000, 100
    extra.setdefault("spend_ledger", {"enabled": False})
    return make_config({"up": openai_provider(mock.v1_url, models=["gpt-4o-mini", "gpt-4o"])}, auth=KEYS,
                       cost_tracking=PRICES, budgets=budgets, server={"operational_routes": "public"}, **extra)


def ask(gw, key, model="gpt-4o-mini", user=None, body_user=None):
    headers = {"Authorization": f"Bearer {key}", **({"x-prism-user-id": user} if user else {})}
    body = chat_body(model, **({"user": body_user} if body_user else {}))
    return post(gw.v1 + "/chat/completions", body, headers=headers)


def admin(method, gw, path, body=None):
    return request(method, gw.url(path), body=body, headers={"Authorization": f"Bearer {ADMIN}"})


def test_a_hard_key_budget_lets_the_crossing_request_finish_then_refuses(gateway, mock_upstream):
    gw = gateway(config(mock_upstream, {"keys": {"alice": {"limit": 0.0075, "period": "daily"}}}))
    # $0.003, $0.006, $0.009: the third starts under the limit and completes; the fourth is refused.
    for _ in range(3):
        answer = ask(gw, ALICE)
        assert answer.status == 200 and answer.headers["x-prism-cost"] == "0.003", answer.text
    refused = ask(gw, ALICE)
    assert_openai_error(refused, 429, type="budget_exceeded", code="budget_exceeded")
    message = refused.json()["error"]["message"]
    assert "key 'alice'" in message and "0.0075" in message and "0.009" in message, message
    retry = int(refused.headers["retry-after"])
    assert 0 < retry <= 86_400, refused.headers
    assert len(mock_upstream.chat_requests()) == 3  # the refused one never reached the provider
    # Another key has no budget; alice's spend is not his.
    assert ask(gw, BOB).status == 200
    metrics = get(gw.url("/-/metrics")).text
    assert re.search(r'prism_budget_refusals_total\{scope="key"\} 1', metrics), metrics[-2000:]
    assert re.search(r'prism_budget_warnings_total\{(?=[^}]*scope="key")(?=[^}]*level="limit")[^}]*\} 1', metrics)


@pytest.mark.parametrize("scope", ["org", "team", "user", "body_user", "model", "wildcard_user"])
def test_every_scope_is_enforced(gateway, mock_upstream, scope):
    limit = {"limit": 0.005, "period": "monthly"}
    budgets = {
        "org": {"org": limit},
        "team": {"teams": {"team-a": limit}},
        "user": {"users": {"u-1": limit}},
        "body_user": {"users": {"u-1": limit}},
        "model": {"per_model": {"gpt-4o": limit}},
        "wildcard_user": {"users": {"*": limit}},
    }[scope]
    gw = gateway(config(mock_upstream, budgets))

    def spend_it():
        if scope == "org":
            return ask(gw, ALICE)
        if scope == "team":
            return ask(gw, ALICE)  # team-a
        if scope in ("user", "wildcard_user"):
            return ask(gw, ALICE, user="u-1")
        if scope == "body_user":
            return ask(gw, ALICE, body_user="u-1")
        return ask(gw, ALICE, model="gpt-4o")

    assert spend_it().status == 200 and spend_it().status == 200  # $0.006 > $0.005 after the second
    refused = spend_it()
    assert_openai_error(refused, 429, code="budget_exceeded")
    # What is outside the budget goes on; what is inside it is refused from any key.
    outside = {
        "org": None,
        "team": lambda: ask(gw, BOB),  # team-b
        "user": lambda: ask(gw, ALICE, user="u-2"),
        "body_user": lambda: ask(gw, ALICE, body_user="u-2"),
        "model": lambda: ask(gw, ALICE, model="gpt-4o-mini"),
        "wildcard_user": lambda: ask(gw, ALICE, user="u-2"),  # each user has a budget of its own
    }[scope]
    if outside:
        assert outside().status == 200
    inside = {
        "org": lambda: ask(gw, BOB),
        "team": lambda: ask(gw, CAROL),  # also team-a
        "user": lambda: ask(gw, BOB, user="u-1"),
        "body_user": lambda: ask(gw, BOB, user="u-1"),  # the header names the same user
        "model": lambda: ask(gw, BOB, model="gpt-4o"),
        "wildcard_user": lambda: ask(gw, BOB, user="u-1"),
    }[scope]
    assert_openai_error(inside(), 429, code="budget_exceeded")


def test_a_soft_budget_warns_at_the_threshold_and_the_limit_and_never_refuses(gateway, mock_upstream):
    gw = gateway(config(mock_upstream, {"warn_threshold": 0.5, "org": {"limit": 0.01, "hard": False}}))
    statuses = [ask(gw, ALICE).status for _ in range(5)]  # $0.015 in all
    assert statuses == [200] * 5
    warn = gw.wait_for_log(r"budget org 'org' passed 50 % of its limit: spent (\S+) of 0.01 USD")
    assert warn.group(1) == "0.006"
    reached = gw.wait_for_log(r"budget org 'org' reached its limit: spent (\S+) of 0.01 USD .*soft")
    assert reached.group(1) == "0.012"
    # Each crossing is told once.
    assert len(gw.log_lines("passed 50 %")) == 1 and len(gw.log_lines("reached its limit")) == 1
    metrics = get(gw.url("/-/metrics")).text
    assert re.search(r'prism_budget_warnings_total\{(?=[^}]*scope="org")(?=[^}]*level="warn")[^}]*\} 1', metrics)


def test_cache_hits_spend_nothing(gateway, mock_upstream):
    gw = gateway(config(mock_upstream, {"keys": {"alice": {"limit": 0.005}}}, cache={"enabled": True}))
    first = ask(gw, ALICE)
    assert first.headers["x-prism-cache"] == "miss"
    for _ in range(5):
        hit = ask(gw, ALICE)
        assert hit.status == 200 and hit.headers["x-prism-cache"] == "hit" and hit.headers["x-prism-cost"] == "0"


def test_budgets_report_their_spend(gateway, mock_upstream):
    gw = gateway(config(mock_upstream, {"org": {"limit": 100, "period": "total"},
                                        "teams": {"team-a": {"limit": 1, "period": "weekly"}},
                                        "users": {"*": {"limit": 1}}}, admin={"token": ADMIN}))
    assert ask(gw, ALICE).status == 200 and ask(gw, BOB).status == 200
    assert admin("GET", gw, "/-/budgets").status == 200
    assert get(gw.url("/-/budgets")).status == 401
    report = admin("GET", gw, "/-/budgets").json()
    rows = {(b["scope"], b["name"]): b for b in report["budgets"]}
    assert rows[("org", "org")]["spent_usd"] == 0.006 and rows[("org", "org")]["resets_at_ms"] is None
    assert rows[("team", "team-a")]["spent_usd"] == 0.003 and rows[("team", "team-a")]["remaining_usd"] == 0.997
    assert rows[("team", "team-a")]["period"] == "weekly" and rows[("team", "team-a")]["resets_at_ms"] > time.time() * 1000
    assert ("user", "*") not in rows and report["backend"] == "memory"


def test_a_budget_config_is_checked(run_prism, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("providers: {}\nbudgets:\n  org: {limit: lots}\n  users:\n    u: {limit: 5, period: hourly}\n")
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1, result.stderr
    assert "budgets.org.limit" in result.stderr and "budgets.users.u.period" in result.stderr, result.stderr


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_two_gateways_on_one_redis_hold_a_budget_exactly(gateway, mock_upstream, redis):
    shared = {"enabled": True, "address": redis.address, "prefix": "prism-budget:", "timeout": "300ms"}
    cfg = config(mock_upstream, {"teams": {"team-a": {"limit": 0.0115, "period": "daily"}}}, redis=shared,
                 admin={"token": ADMIN})
    first, second = gateway(cfg), gateway(cfg)
    # $0.003 each, alternating replicas: 0.003, 0.006, 0.009, 0.012 (the fourth crosses), then refused.
    statuses = [ask(gw, key).status for gw, key in zip([first, second] * 3, [ALICE, CAROL] * 3)]
    assert statuses == [200, 200, 200, 200, 429, 429], statuses
    for gw in (first, second):
        rows = {(b["scope"], b["name"]): b for b in admin("GET", gw, "/-/budgets").json()["budgets"]}
        assert rows[("team", "team-a")]["spent_usd"] == 0.012
    assert any(key.startswith("prism-budget:counter:budget:team:team-a:d") for key in redis.keys()), redis.keys()


def test_virtual_keys_carry_a_budget_an_expiry_and_metadata(gateway, mock_upstream, tmp_path):
    store = tmp_path / "admin" / "store.sqlite"
    give_to_gateway(store.parent)
    gw = gateway(config(mock_upstream, {}, admin={"token": ADMIN, "store": str(store)},
                        spend_ledger={"path": str(tmp_path / "admin" / "spend.sqlite"), "flush_interval": "100ms"}))
    made = admin("POST", gw, "/-/keys", {"name": "agent-1", "owner": "team-z", "models": ["gpt-4o-mini"],
                                          "budget": {"limit": 0.005, "period": "monthly"},
                                          "expires_at": "2099-01-01T00:00:00Z",
                                          "metadata": {"project": "search", "cost_center": 42}})
    assert made.status == 201, made.text
    record = made.json()
    assert record["expires_at"] == 4070908800 and record["metadata"] == {"project": "search", "cost_center": 42}
    assert record["budget"] == {"limit": 0.005, "period": "monthly", "hard": True}
    raw = record["key"]
    assert ask(gw, raw).status == 200 and ask(gw, raw).status == 200
    assert_openai_error(ask(gw, raw), 429, code="budget_exceeded")
    shown = admin("GET", gw, f"/-/keys/{record['id']}")
    assert shown.status == 200, shown.text
    key = shown.json()
    assert "key" not in key and raw not in shown.text
    assert key["metadata"]["project"] == "search"
    assert key["spend"]["budget"]["spent_usd"] == 0.006 and key["spend"]["budget"]["remaining_usd"] == 0
    assert key["spend"]["requests"] == 2 and key["spend"]["cost_usd"] == 0.006
    assert admin("GET", gw, "/-/keys/key_doesnotexist").status == 404

    # A key that expires in two seconds works until then, and is refused after.
    soon = admin("POST", gw, "/-/keys", {"name": "short-lived", "expires_at": int(time.time()) + 2})
    assert soon.status == 201, soon.text
    assert ask(gw, soon.json()["key"]).status == 200
    time.sleep(2.5)
    assert_openai_error(ask(gw, soon.json()["key"]), 401, code="key_expired")

    for bad in [{"name": "x", "expires_at": 1000}, {"name": "y", "expires_at": "tomorrow"},
                {"name": "z", "budget": {"limit": "ten"}}, {"name": "w", "budget": {"limit": 1, "period": "hourly"}},
                {"name": "v", "metadata": ["not", "an", "object"]}]:
        answer = admin("POST", gw, "/-/keys", bad)
        assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_key_request", (bad, answer.text)
