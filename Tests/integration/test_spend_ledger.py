"""The spend ledger: every request that reached a provider (or was answered in its place) is
written off the hot path to SQLite with its key, owner, user, model, provider, tokens, cost,
status and latency; GET /-/spend totals it by key, owner, user, model or provider between two
times; it survives a restart."""

import json
import re
import os
import time
from pathlib import Path

from prism_helpers import chat_body, get, make_config, openai_provider, post, wait_until

ADMIN = "admin-token-for-ledger-0001"
KEYS = {"enabled": True, "keys": [{"name": "alice", "key": "sk-prism-ledger-alice-01", "owner": "team-a"},
                                  {"name": "bob", "key": "sk-prism-ledger-bob-0001", "owner": "team-b"}]}
PRICES = {"custom_pricing": {"gpt-4o-mini": {"input_per_mtok": 2, "output_per_mtok": 10}}}


def spend(gw, **query):
    url = gw.url("/-/spend") + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    answer = get(url, headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status == 200, answer.text
    return answer.json()


def ask(gw, key, model="gpt-4o-mini", user=None):
    headers = {"Authorization": f"Bearer {key}", **({"x-prism-user-id": user} if user else {})}
    return post(gw.v1 + "/chat/completions", chat_body(model), headers=headers)


def config(mock, ledger):
    return make_config({"up": openai_provider(mock.v1_url, models=["gpt-4o-mini", "gpt-4o"])}, auth=KEYS,
                       admin={"token": ADMIN}, cost_tracking=PRICES, spend_ledger=ledger)


def test_spend_is_totalled_by_every_dimension_and_survives_a_restart(gateway, mock_upstream, tmp_path):
    os.chmod(tmp_path, 0o777)
    ledger = {"path": str(tmp_path / "spend.sqlite"), "flush_interval": "200ms"}
    mock_upstream.prompt_tokens, mock_upstream.completion_tokens = 1000, 100  # $0.003 on gpt-4o-mini
    gw = gateway(config(mock_upstream, ledger))
    started = int(time.time() * 1000)
    for _ in range(3):
        assert ask(gw, "sk-prism-ledger-alice-01", user="u-1").status == 200
    assert ask(gw, "sk-prism-ledger-bob-0001", model="gpt-4o").status == 200
    assert ask(gw, "sk-wrong-key").status == 401  # never reached a provider: not in the ledger

    by_key = {g["key"]: g for g in spend(gw, group_by="key")["groups"]}
    assert by_key["alice"]["requests"] == 3 and by_key["alice"]["cost_usd"] == 0.009
    assert by_key["alice"]["tokens_in"] == 3000 and by_key["alice"]["tokens_out"] == 300
    table = json.loads((Path(__file__).resolve().parents[2] / "config" / "prices.json").read_text())["models"]["gpt-4o"]
    bob_cost = round((1000 * table["input"] + 100 * table["output"]) / 1e6, 8)  # from the shipped table
    assert by_key["bob"]["requests"] == 1 and by_key["bob"]["cost_usd"] == bob_cost
    assert {g["owner"] for g in spend(gw, group_by="owner")["groups"]} == {"team-a", "team-b"}
    assert {g["user"]: g["requests"] for g in spend(gw, group_by="user")["groups"]} == {"u-1": 3, "-": 1}
    assert {g["model"]: g["requests"] for g in spend(gw, group_by="model")["groups"]} == {"gpt-4o-mini": 3, "gpt-4o": 1}
    assert spend(gw, group_by="provider")["total"] == {"requests": 4, "cost_usd": round(0.009 + bob_cost, 8)}
    # A time window: everything is after `started`, nothing before it.
    assert spend(gw, group_by="key", **{"from": started})["total"]["requests"] == 4
    assert spend(gw, group_by="key", to=started - 1)["total"]["requests"] == 0
    assert spend(gw, group_by="key", **{"from": "2020-01-01"})["total"]["requests"] == 4

    gw.stop()
    again = gateway(config(mock_upstream, ledger))
    assert ask(again, "sk-prism-ledger-alice-01").status == 200
    totals = {g["key"]: g["requests"] for g in spend(again, group_by="key")["groups"]}
    assert totals == {"alice": 4, "bob": 1}


def test_rows_reach_the_file_within_the_flush_interval(gateway, mock_upstream, tmp_path):
    """With the default `flush_interval` (50 ms) rows reach the file at once, without a query:
    read with sqlite3 directly, since `/-/spend` would write them first."""
    import sqlite3
    os.chmod(tmp_path, 0o777)
    path = tmp_path / "spend.sqlite"
    gw = gateway(config(mock_upstream, {"path": str(path)}))
    for _ in range(5):
        assert ask(gw, "sk-prism-ledger-alice-01").status == 200

    def written():
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM spend WHERE key = 'alice'").fetchone()[0]
    started = time.monotonic()
    assert wait_until(lambda: written() == 5, timeout=5), written()
    assert time.monotonic() - started < 0.5  # the old default, 1 s, would often miss this


def test_spend_needs_the_admin_token_and_checks_its_query(gateway, mock_upstream, tmp_path):
    os.chmod(tmp_path, 0o777)
    gw = gateway(config(mock_upstream, {"path": str(tmp_path / "s.sqlite")}))
    assert get(gw.url("/-/spend")).status == 401
    assert get(gw.url("/-/spend"), headers={"Authorization": "Bearer sk-prism-ledger-alice-01"}).status in (401, 403)
    bad = get(gw.url("/-/spend?group_by=colour"), headers={"Authorization": f"Bearer {ADMIN}"})
    assert bad.status == 400 and "group_by" in bad.json()["error"]["message"]
    bad = get(gw.url("/-/spend?from=yesterday"), headers={"Authorization": f"Bearer {ADMIN}"})
    assert bad.status == 400


def test_a_configured_ledger_that_cannot_be_opened_stops_startup(gateway, mock_upstream, run_prism, tmp_path):
    cfg = config(mock_upstream, {"path": "/proc/no-such-dir/spend.sqlite"})
    path = tmp_path / "bad-ledger.yaml"
    from prism_helpers import to_yaml
    path.write_text(to_yaml(cfg))
    proc = run_prism("--config", str(path), timeout=20)
    assert proc.returncode != 0 and "spend ledger /proc/no-such-dir/spend.sqlite" in proc.stderr, proc.stderr


def test_rows_still_buffered_are_written_at_shutdown(gateway, mock_upstream, tmp_path):
    """A request answered just before SIGTERM is in the ledger after the exit, although its flush
    was still far off."""
    import signal
    import sqlite3
    os.chmod(tmp_path, 0o777)
    path = tmp_path / "spend.sqlite"
    gw = gateway(config(mock_upstream, {"path": str(path), "flush_interval": "1h"}))
    for _ in range(2):
        assert ask(gw, "sk-prism-ledger-alice-01").status == 200
    gw.send_signal(signal.SIGTERM)
    assert gw.wait_exit(10) == 0
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, model FROM spend").fetchall()
    assert rows == [("alice", "gpt-4o-mini")] * 2


def test_an_answer_is_counted_everywhere_before_the_client_has_it(gateway, mock_upstream, tmp_path):
    """A client that has its answer, buffered or streamed, finds it at once in the metrics and the
    spend ledger, from a new connection (which may be another event loop's): the request's facts
    are recorded before its last bytes are written."""
    os.chmod(tmp_path, 0o777)
    gw = gateway(config(mock_upstream, {"path": str(tmp_path / "spend.sqlite"), "flush_interval": "1h"}))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for count in range(1, 31):
        body = chat_body("gpt-4o-mini", stream=count % 2 == 0)
        answer = post(gw.v1 + "/chat/completions", body, headers={"Authorization": "Bearer sk-prism-ledger-alice-01"})
        assert answer.status == 200
        metrics = get(gw.url("/-/metrics"), headers=admin).text
        counted = sum(float(value) for value in re.findall(r'^prism_requests_total\{[^}]*\} (\S+)$', metrics, re.M))
        assert counted == count, (count, counted)
        assert spend(gw, group_by="key")["total"]["requests"] == count
