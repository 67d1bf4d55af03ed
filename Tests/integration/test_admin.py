"""The admin API: behind the admin token (off without one), providers and client keys changed at
runtime, persisted in the SQLite store with provider secrets encrypted (PRISM_MASTER_KEY) and
client keys stored as hashes, and surviving a restart."""

import pytest

from conftest import give_to_gateway

from prism_helpers import assert_openai_error, chat_body, get, make_config, openai_provider, post, request

ADMIN = "admin-token-for-tests-0002"
MASTER = "master-key-for-tests-abcdef"
UPSTREAM_SECRET = "sk-live-upstream-secret-5a6b7c8d9e"
CLIENT_KEY = "sk-prism-file-client-key-77"


def admin(token=ADMIN):
    return {"Authorization": f"Bearer {token}"}


def admin_config(upstream, store, **extra):
    return make_config({"up": openai_provider(upstream.v1_url, models=["gpt-4o-mini"])},
                       auth={"enabled": True, "keys": [{"name": "file-key", "key": CLIENT_KEY}]},
                       admin={"token": ADMIN, "store": str(store)}, **extra)


@pytest.fixture
def store(tmp_path):
    return tmp_path / "admin-store" / "prism-admin.sqlite"


@pytest.fixture
def gw(gateway, mock_upstream, store):
    give_to_gateway(store.parent)
    return gateway(admin_config(mock_upstream, store), env={"PRISM_MASTER_KEY": MASTER})


def test_admin_api_is_off_without_a_token(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}), env={"PRISM_ADMIN_TOKEN": None})
    for method, path in [("GET", "/-/keys"), ("POST", "/-/reload"), ("GET", "/-/config"), ("GET", "/-/providers")]:
        assert_openai_error(request(method, gw.url(path), headers=admin()), 404, code="admin_api_off")
    # Metrics stay open for scrapers.
    assert get(gw.url("/-/metrics")).status == 200


def test_admin_token_from_the_environment(gateway, mock_upstream, tmp_path):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, admin={"store": str(tmp_path / "s.sqlite")}),
                 env={"PRISM_ADMIN_TOKEN": "env-admin-token-0123456789"})
    assert get(gw.url("/-/keys"), headers=admin("env-admin-token-0123456789")).status == 200


def test_admin_routes_need_the_admin_token(gw):
    for method, path in [("GET", "/-/keys"), ("POST", "/-/keys"), ("GET", "/-/providers"),
                         ("PUT", "/-/providers/x"), ("DELETE", "/-/keys/key_x"), ("POST", "/-/reload"),
                         ("GET", "/-/config")]:
        assert_openai_error(request(method, gw.url(path), body={}), 401, code="missing_admin_token")
        assert_openai_error(request(method, gw.url(path), body={}, headers=admin("wrong-token-000000000")),
                            403, code="invalid_admin_token")
        # A client key is not an admin token.
        assert_openai_error(request(method, gw.url(path), body={}, headers=admin(CLIENT_KEY)), 403)


def test_client_keys_created_shown_once_used_and_revoked(gw, store):
    created = post(gw.url("/-/keys"), {"name": "team-a", "owner": "alpha", "models": ["gpt-4o-mini"],
                                       "rate_limit_rpm": 100}, headers=admin())
    assert created.status == 201, created.text
    record = created.json()
    raw = record["key"]
    assert raw.startswith("sk-prism-") and record["preview"].endswith(raw[-4:])
    # The new key works at once (the key table took it)...
    ok = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"), headers={"Authorization": f"Bearer {raw}"})
    assert ok.status == 200
    gw.wait_for_log(r"request id=\S+ key=team-a owner=alpha")
    # ...its model restriction holds...
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o"), headers={"Authorization": f"Bearer {raw}"}).status == 403
    # ...it is never shown again...
    listing = get(gw.url("/-/keys"), headers=admin())
    assert raw not in listing.text and CLIENT_KEY not in listing.text
    names = {k["name"]: k for k in listing.json()["keys"]}
    assert names["team-a"]["source"] == "admin" and names["file-key"]["source"] == "config"
    # ...the store holds only its hash...
    assert raw.encode() not in store.read_bytes()
    # ...and revoking it locks it out.
    assert request("DELETE", gw.url(f"/-/keys/{record['id']}"), headers=admin()).status == 200
    locked = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"), headers={"Authorization": f"Bearer {raw}"})
    assert_openai_error(locked, 401, code="invalid_api_key")
    assert_openai_error(request("DELETE", gw.url(f"/-/keys/{record['id']}"), headers=admin()), 404)
    assert_openai_error(post(gw.url("/-/keys"), {"owner": "no name"}, headers=admin()), 400)
    assert post(gw.url("/-/keys"), {"name": "team-a"}, headers=admin()).status == 409


def test_creating_and_revoking_keys_rebuilds_nothing(gw):
    """Admin keys reach the auth plugin through prism.client_keys.v1: a creation or a revocation
    updates the host's table, it builds no new generation (no instance_new, no reload)."""
    started = gw.log().count("auth enabled with")
    assert started >= 1
    keys = []
    for index in range(5):
        made = post(gw.url("/-/keys"), {"name": f"burst-{index}", "models": ["gpt-4o-mini"]}, headers=admin())
        assert made.status == 201, made.text
        keys.append(made.json())
        # Each key is usable the moment its creation was answered.
        answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                      headers={"Authorization": f"Bearer {made.json()['key']}"})
        assert answer.status == 200, answer.text
    # Keys made before still work; the file's key too.
    for record in keys:
        assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                    headers={"Authorization": f"Bearer {record['key']}"}).status == 200
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                headers={"Authorization": f"Bearer {CLIENT_KEY}"}).status == 200
    assert request("DELETE", gw.url(f"/-/keys/{keys[2]['id']}"), headers=admin()).status == 200
    assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                             headers={"Authorization": f"Bearer {keys[2]['key']}"}), 401, code="invalid_api_key")
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                headers={"Authorization": f"Bearer {keys[3]['key']}"}).status == 200
    log = gw.log()
    assert "configuration reloaded (admin" not in log, log
    assert log.count("auth enabled with") == started


def test_auth_on_with_no_file_keys_waits_for_admin_keys(gateway, mock_upstream, store):
    """With the admin API on, `auth.enabled: true` and no keys in the file is a gateway whose
    clients get keys from the admin API (without it, that configuration is refused)."""
    give_to_gateway(store.parent)
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])},
                             auth={"enabled": True}, admin={"token": ADMIN, "store": str(store)}))
    assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                             headers={"Authorization": "Bearer sk-nobody"}), 401, code="invalid_api_key")
    raw = post(gw.url("/-/keys"), {"name": "first"}, headers=admin()).json()["key"]
    assert post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"),
                headers={"Authorization": f"Bearer {raw}"}).status == 200


def test_providers_added_changed_and_removed_at_runtime(gw, make_mock, store):
    second = make_mock()
    section = {"api_format": "openai", "api_key": UPSTREAM_SECRET, "base_url": second.v1_url, "models": ["runtime-model"]}
    put = request("PUT", gw.url("/-/providers/runtime"), body=section, headers=admin())
    assert put.status == 200, put.text
    assert put.json()["api_key"] == UPSTREAM_SECRET[:3] + "…" + UPSTREAM_SECRET[-4:]
    key = {"Authorization": f"Bearer {CLIENT_KEY}"}
    resp = post(gw.v1 + "/chat/completions", chat_body("runtime-model"), headers=key)
    assert resp.status == 200 and resp.headers["x-prism-provider"] == "runtime"
    assert second.last_chat().headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    # Listings and the running config never show the key.
    for path in ["/-/providers", "/-/providers/runtime", "/-/config"]:
        body = get(gw.url(path), headers=admin()).text
        assert UPSTREAM_SECRET not in body and "runtime-model" in body
    # Encrypted at rest: the key's bytes are nowhere in the store's files.
    for path in store.parent.iterdir():
        assert UPSTREAM_SECRET.encode() not in path.read_bytes(), path
    assert UPSTREAM_SECRET not in gw.log()
    # Change it: a new model list applies at once.
    section["models"] = ["runtime-model-2"]
    assert request("PUT", gw.url("/-/providers/runtime"), body=section, headers=admin()).status == 200
    assert post(gw.v1 + "/chat/completions", chat_body("runtime-model-2"), headers=key).status == 200
    assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("runtime-model"), headers=key), 404)
    # Invalid sections are refused with the loader's message.
    bad = request("PUT", gw.url("/-/providers/broken"), body={"models": "not-a-list"}, headers=admin())
    err = assert_openai_error(bad, 400, code="invalid_provider")
    assert "models" in err["message"]
    # A provider from config.yaml cannot be deleted here; a runtime one can.
    assert request("DELETE", gw.url("/-/providers/up"), headers=admin()).status == 409
    assert request("DELETE", gw.url("/-/providers/runtime"), headers=admin()).status == 200
    assert_openai_error(post(gw.v1 + "/chat/completions", chat_body("runtime-model-2"), headers=key), 404)


def test_changes_persist_across_a_restart(gateway, mock_upstream, make_mock, store):
    give_to_gateway(store.parent)
    second = make_mock()
    cfg = admin_config(mock_upstream, store)
    first = gateway(cfg, env={"PRISM_MASTER_KEY": MASTER})
    raw = post(first.url("/-/keys"), {"name": "kept"}, headers=admin()).json()["key"]
    section = {"api_format": "openai", "api_key": UPSTREAM_SECRET, "base_url": second.v1_url, "models": ["kept-model"]}
    assert request("PUT", first.url("/-/providers/kept"), body=section, headers=admin()).status == 200
    first.stop()

    again = gateway(cfg, env={"PRISM_MASTER_KEY": MASTER})
    resp = post(again.v1 + "/chat/completions", chat_body("kept-model"), headers={"Authorization": f"Bearer {raw}"})
    assert resp.status == 200 and resp.headers["x-prism-provider"] == "kept"
    assert second.last_chat().headers["authorization"] == f"Bearer {UPSTREAM_SECRET}"
    again.stop()

    # Another master key cannot open the store: the gateway says so and does not start.
    wrong = gateway(cfg, env={"PRISM_MASTER_KEY": "another-master-key-999"}, wait_ready=False)
    assert wrong.wait_exit(15) not in (None, 0)
    assert "PRISM_MASTER_KEY does not open this store" in wrong.log()


def test_providers_need_a_master_key(gateway, mock_upstream, store):
    give_to_gateway(store.parent)
    gw = gateway(admin_config(mock_upstream, store), env={"PRISM_MASTER_KEY": None})
    section = {"api_format": "openai", "api_key": UPSTREAM_SECRET, "base_url": mock_upstream.v1_url, "models": ["m"]}
    err = assert_openai_error(request("PUT", gw.url("/-/providers/p"), body=section, headers=admin()), 503,
                              code="master_key_missing")
    assert "PRISM_MASTER_KEY" in err["message"]
    # Client keys need no master key (only hashes are stored).
    assert post(gw.url("/-/keys"), {"name": "ok"}, headers=admin()).status == 201
