"""Organizations: PUT/GET/DELETE /-/orgs/{id}/config (the sections an organization owns, validated
by the config loader, provider keys sealed and never returned), keys per organization, and a
request made with an organization's key served by that organization's providers, limits and
budgets while other organizations (and the file's configuration, the default one) keep theirs;
changing one organization leaves the others' requests in flight alone; it all survives a restart."""

import threading
import time

import pytest

from conftest import give_to_gateway
from prism_helpers import (SSEStream, assert_openai_error, chat_body, get, make_config, openai_provider,
                           parse_chunks, post, request)

ADMIN = "admin-token-for-orgs-00001"
MASTER = "master-key-for-org-tests-xyz"
FILE_KEY = "sk-prism-file-client-orgs-1"
ORG_SECRET = "sk-live-acme-upstream-secret-9f8e7d"


def admin(method, gw, path, body=None):
    return request(method, gw.url(path), body=body, headers={"Authorization": f"Bearer {ADMIN}"})


def ask(gw, key, model="gpt-4o-mini", **extra):
    return post(gw.v1 + "/chat/completions", chat_body(model, **extra), headers={"Authorization": f"Bearer {key}"})


def org_config(mock, models=("gpt-4o-mini", "gpt-4o"), **sections):
    return {"providers": {"openai": {"api_key": ORG_SECRET, "api_format": "openai", "base_url": mock.v1_url,
                                     "models": list(models)}}, **sections}


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "admin" / "store.sqlite"
    give_to_gateway(path.parent)
    return path


def start(gateway, mock, store, **extra):
    config = make_config({"file-provider": openai_provider(mock.v1_url, models=["gpt-4o-mini", "file-only-model"])},
                         auth={"enabled": True, "keys": [{"name": "file-key", "key": FILE_KEY}]},
                         admin={"token": ADMIN, "store": str(store)}, spend_ledger={"enabled": False}, **extra)
    return gateway(config, env={"PRISM_MASTER_KEY": MASTER})


def make_org(gw, org_id, config):
    answer = admin("PUT", gw, f"/-/orgs/{org_id}/config", config)
    assert answer.status in (200, 201), answer.text
    key = admin("POST", gw, f"/-/orgs/{org_id}/keys", {"name": f"{org_id}-key"})
    assert key.status == 201, key.text
    assert key.json()["org"] == org_id
    return key.json()["key"]


def test_an_organizations_key_is_served_by_its_own_providers(gateway, make_mock, store):
    file_mock, acme_mock, globex_mock = make_mock(), make_mock(), make_mock()
    gw = start(gateway, file_mock, store)
    acme = make_org(gw, "acme", org_config(acme_mock))
    globex = make_org(gw, "globex", org_config(globex_mock, models=["gpt-4o-mini"]))

    assert ask(gw, acme).status == 200 and ask(gw, acme, model="gpt-4o").status == 200
    assert ask(gw, globex).status == 200
    assert ask(gw, FILE_KEY).status == 200
    assert (len(acme_mock.chat_requests()), len(globex_mock.chat_requests()), len(file_mock.chat_requests())) == (2, 1, 1)
    # The organization's provider got its own key; nobody else's requests reach it.
    assert acme_mock.chat_requests()[0].headers["authorization"] == f"Bearer {ORG_SECRET}"
    # An organization uses none of the file's providers, nor another organization's: a model only
    # the file serves is unknown to it, and a family name (gpt-4o, which globex does not list)
    # resolves among its own providers only.
    assert_openai_error(ask(gw, acme, model="file-only-model"), 404, code="model_not_found")
    assert_openai_error(ask(gw, globex, model="file-only-model"), 404, code="model_not_found")
    assert ask(gw, globex, model="gpt-4o").status == 200 and ask(gw, FILE_KEY, model="gpt-4o").status == 200
    assert (len(acme_mock.chat_requests()), len(globex_mock.chat_requests()), len(file_mock.chat_requests())) == (2, 2, 2)
    # Its models list is its own.
    models = get(gw.v1 + "/models", headers={"Authorization": f"Bearer {globex}"}).json()
    assert [m["id"] for m in models["data"]] == ["gpt-4o-mini"]
    # Keys from the file do not open an organization, nor a made-up key.
    assert_openai_error(ask(gw, "sk-prism-nobody"), 401, code="invalid_api_key")

    # The config comes back with its provider key masked; the key is nowhere in the answers or the store.
    shown = admin("GET", gw, "/-/orgs/acme/config")
    assert shown.status == 200 and ORG_SECRET not in shown.text, shown.text
    assert shown.json()["config"]["providers"]["openai"]["models"] == ["gpt-4o-mini", "gpt-4o"]
    assert [k["name"] for k in shown.json()["keys"]] == ["acme-key"]
    for path in store.parent.iterdir():
        assert ORG_SECRET.encode() not in path.read_bytes()
    listed = admin("GET", gw, "/-/orgs").json()["orgs"]
    assert {o["org_id"]: (o["providers"], o["keys"], o["serving"]) for o in listed} == {
        "acme": (["openai"], 1, True), "globex": (["openai"], 1, True)}


def test_organizations_keep_their_limits_and_budgets_apart(gateway, make_mock, store):
    file_mock, acme_mock = make_mock(), make_mock()
    acme_mock.prompt_tokens, acme_mock.completion_tokens = 1000, 100
    gw = start(gateway, file_mock, store, rate_limiting={"enabled": True, "global_rpm": 3})
    acme = make_org(gw, "acme", org_config(acme_mock, rate_limiting={"enabled": True, "global_rpm": 2},
                                           budgets={"org": {"limit": 0.004}}))
    # The organization's global limit is its own: 2 a minute, counted apart from the file's 3.
    statuses = [ask(gw, acme, content=f"a{i}").status for i in range(3)]
    assert statuses == [200, 200, 429], statuses
    assert [ask(gw, FILE_KEY, content=f"f{i}").status for i in range(4)] == [200, 200, 200, 429]
    # Its budget counted its own two answers (gpt-4o-mini at the shipped price, $0.00021 each):
    # lowered under that, the next request is refused; the file's keys have no budget.
    assert admin("PUT", gw, "/-/orgs/acme/config",
                 org_config(acme_mock, budgets={"org": {"limit": 0.0004}})).status == 200
    assert_openai_error(ask(gw, acme), 429, code="budget_exceeded")
    assert admin("PUT", gw, "/-/orgs/acme/config",
                 org_config(acme_mock, budgets={"org": {"limit": 0.0005}})).status == 200
    assert ask(gw, acme).status == 200  # 0.00042 < 0.0005: it goes, crossing the limit
    assert_openai_error(ask(gw, acme), 429, code="budget_exceeded")


def test_bad_organization_configs_are_refused_and_nothing_is_stored(gateway, mock_upstream, store):
    gw = start(gateway, mock_upstream, store)
    for body, expected in [
        ({"server": {"port": 1}, **org_config(mock_upstream)}, "`server` cannot be set per organization"),
        ({"routing": {}}, "needs `providers`"),
        ({"providers": {"x": {"api_format": "no-such-format", "models": ["m"]}}}, "no-such-format"),
        ({"budgets": {"org": {"limit": "lots"}}, **org_config(mock_upstream)}, "budgets.org.limit"),
        ([1, 2], "JSON object"),
    ]:
        answer = admin("PUT", gw, "/-/orgs/bad/config", body)
        assert answer.status == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_org_config" and expected in error["message"], error
        assert ORG_SECRET not in answer.text
    assert admin("GET", gw, "/-/orgs/bad/config").status == 404
    assert admin("PUT", gw, "/-/orgs/bad%2Fid/config", org_config(mock_upstream)).json()["error"]["code"] == "invalid_org_id"
    assert admin("POST", gw, "/-/orgs/nowhere/keys", {"name": "k"}).status == 404
    assert request("PUT", gw.url("/-/orgs/acme/config"), body=org_config(mock_upstream)).status == 401


def test_changing_one_organization_leaves_requests_in_flight_alone(gateway, make_mock, store):
    file_mock, acme_mock, globex_mock = make_mock(), make_mock(), make_mock()
    gw = start(gateway, file_mock, store)
    acme = make_org(gw, "acme", org_config(acme_mock))
    globex = make_org(gw, "globex", org_config(globex_mock))
    globex_mock.hold_after_chunks = 2
    acme_mock.hold_response = True
    results = {}

    def stream_globex():
        with SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True),
                       headers={"Authorization": f"Bearer {globex}"}) as stream:
            results["globex"] = parse_chunks(stream.read_all())

    def ask_acme():
        results["acme"] = ask(gw, acme)

    threads = [threading.Thread(target=stream_globex), threading.Thread(target=ask_acme)]
    for thread in threads:
        thread.start()
    assert globex_mock.holding.wait(5) and acme_mock.holding.wait(5)
    # Both organizations change while their requests wait upstream (acme moves to a new upstream).
    other = make_mock()
    assert admin("PUT", gw, "/-/orgs/acme/config", org_config(other)).status == 200
    assert admin("PUT", gw, "/-/orgs/globex/config", org_config(globex_mock, models=["gpt-4o-mini"])).status == 200
    globex_mock.release.set()
    acme_mock.release.set()
    for thread in threads:
        thread.join(10)
    chunks, done = results["globex"]
    assert done and chunks, results
    assert results["acme"].status == 200
    # New requests go to acme's new provider; the old one saw only the request in flight.
    assert ask(gw, acme).status == 200
    assert len(other.chat_requests()) == 1 and len(acme_mock.chat_requests()) == 1


def test_organizations_survive_a_restart_and_deleting_one_revokes_its_keys(gateway, make_mock, store):
    file_mock, acme_mock = make_mock(), make_mock()
    gw = start(gateway, file_mock, store)
    acme = make_org(gw, "acme", org_config(acme_mock))
    gw.stop()
    again = start(gateway, file_mock, store)
    assert ask(again, acme).status == 200 and len(acme_mock.chat_requests()) == 1
    deleted = admin("DELETE", again, "/-/orgs/acme/config")
    assert deleted.status == 200 and deleted.json() == {"deleted": "acme", "keys_revoked": 1}
    assert_openai_error(ask(again, acme), 401, code="invalid_api_key")
    assert admin("GET", again, "/-/orgs/acme/config").status == 404
    assert admin("DELETE", again, "/-/orgs/acme").status == 404


def test_organizations_need_the_master_key(gateway, mock_upstream, store):
    config = make_config({"up": openai_provider(mock_upstream.v1_url)}, admin={"token": ADMIN, "store": str(store)})
    gw = gateway(config, env={"PRISM_MASTER_KEY": None})
    answer = admin("PUT", gw, "/-/orgs/acme/config", org_config(mock_upstream))
    assert answer.status == 503 and answer.json()["error"]["code"] == "master_key_missing", answer.text


def test_the_python_client_manages_organizations(gateway, make_mock, store):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python" / "src"))
    from prism import Prism

    file_mock, acme_mock = make_mock(), make_mock()
    gw = start(gateway, file_mock, store)
    client = Prism(api_key="sk-prism-your-key", base_url=gw.base_url, control_plane_url=gw.base_url, admin_key=ADMIN)
    # The seed's call, against this gateway (its mock upstream as the provider's base_url).
    created = client.org_configs.create(org_id="your-org-id", config={"providers": {"openai": {
        "api_key": "sk-your-openai-key", "api_format": "openai", "base_url": acme_mock.v1_url,
        "models": ["gpt-4o", "gpt-4o-mini"]}}})
    assert created.org_id == "your-org-id"
    assert "sk-your-openai-key" not in str(client.org_configs.get("your-org-id").config)
    raw = client.keys.create(name="org-key", extra_body={"org": "your-org-id"}).key
    org_client = Prism(api_key=raw, base_url=gw.base_url)
    answer = org_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}])
    assert answer.choices[0].message.content and len(acme_mock.chat_requests()) == 1
    client.org_configs.delete("your-org-id")
    assert admin("GET", gw, "/-/orgs/your-org-id/config").status == 404


def test_the_ledger_tells_organizations_apart(gateway, make_mock, store):
    file_mock, acme_mock = make_mock(), make_mock()
    config = make_config({"file-provider": openai_provider(file_mock.v1_url, models=["gpt-4o-mini"])},
                         auth={"enabled": True, "keys": [{"name": "file-key", "key": FILE_KEY}]},
                         admin={"token": ADMIN, "store": str(store)},
                         spend_ledger={"path": str(store.parent / "spend.sqlite"), "flush_interval": "100ms"})
    gw = gateway(config, env={"PRISM_MASTER_KEY": MASTER})
    acme = make_org(gw, "acme", org_config(acme_mock))
    assert ask(gw, acme).status == 200 and ask(gw, acme).status == 200 and ask(gw, FILE_KEY).status == 200
    groups = {g["org"]: g["requests"] for g in admin("GET", gw, "/-/spend?group_by=org").json()["groups"]}
    assert groups == {"acme": 2, "-": 1}, groups
