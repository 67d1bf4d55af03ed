"""Any model name a provider supports: model families declared by the provider plugins (ABI 1.4
model_patterns), their precedence against `models` lists, aliases, targets and `provider/model`,
discovery that follows the servers (periodic and on a miss), `models.retrieve`, and a key's
model list filtering `GET /v1/models`. Through the official OpenAI SDK where a client would."""

import time

import openai
import pytest

from prism_helpers import chat_body, get, make_config, openai_provider, post, wait_until

CLIENT_KEY = "sk-prism-resolution-client-0001"


def sdk(gw, key="unused"):
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)


def served_by(gw, model, times=1):
    providers = set()
    for _ in range(times):
        answer = post(gw.v1 + "/chat/completions", chat_body(model))
        assert answer.status == 200, answer.text
        providers.add(answer.headers["x-prism-provider"])
    return providers


def test_an_unlisted_model_of_a_providers_family_is_served(gateway, mock_upstream):
    """`type: openai` serves gpt-*, o3*, ... whether or not a `models` list names them: a model
    released after the config was written needs no edit and no reload."""
    gw = gateway(make_config({"oa": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])}))
    client = sdk(gw)
    for model in ["gpt-4.1", "gpt-5-preview-2026", "o3-mini", "o4-mini-high"]:
        completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content
        assert mock_upstream.requests[-1].body["model"] == model
    # A provider with no list at all accepts every model of its family.
    gw2 = gateway(make_config({"oa": {"api_format": "openai", "api_key": "k", "base_url": mock_upstream.v1_url}}))
    assert served_by(gw2, "gpt-4.1") == {"oa"}
    with pytest.raises(openai.NotFoundError) as refused:
        sdk(gw2).chat.completions.create(model="llama-3.3-70b", messages=[{"role": "user", "content": "hi"}])
    assert "model family" in str(refused.value) and "oa: gpt-*" in str(refused.value)


def test_precedence_lists_aliases_targets_provider_form_then_families(gateway, make_mock):
    listed, family, pinned = make_mock(), make_mock(), make_mock()
    cfg = make_config({
        "listed": openai_provider(listed.v1_url, models=["gpt-4.1"]),
        "family": {"api_format": "openai", "api_key": "k", "base_url": family.v1_url},
        "pinned": openai_provider(pinned.v1_url, models=["gpt-4o-mini"]),
    }, model_map={"best": "gpt-4.1", "cheap": "gpt-9-unreleased"},
       routing={"targets": {"gpt-4o": [{"provider": "pinned", "model_override": "gpt-4o-mini"}]}})
    gw = gateway(cfg)
    # A `models` list wins over a family: only `listed` names gpt-4.1.
    assert served_by(gw, "gpt-4.1", times=4) == {"listed"}
    # Not in any list: every provider whose family matches (listed and family are both openai;
    # pinned is too), round-robin among them.
    assert served_by(gw, "gpt-4.5-new", times=6) == {"listed", "family", "pinned"}
    # model_map aliases resolve first, to a list or to a family.
    assert served_by(gw, "best", times=3) == {"listed"}
    assert served_by(gw, "cheap", times=6) == {"listed", "family", "pinned"}
    # routing.targets beat lists and families.
    assert served_by(gw, "gpt-4o", times=3) == {"pinned"}
    assert pinned.requests[-1].body["model"] == "gpt-4o-mini"
    # provider/model addresses one provider, before families.
    assert served_by(gw, "family/gpt-4.1", times=3) == {"family"}
    assert family.requests[-1].body["model"] == "gpt-4.1"


def test_families_of_several_plugins_and_the_mock(gateway, mock_upstream):
    """Each provider plugin declares its own families; the mock takes `model_patterns` from its
    config, to try resolution offline."""
    gw = gateway(make_config({
        "sim": {"api_format": "mock", "model_patterns": ["sim-*", "*-sim"]},
        "oa": openai_provider(mock_upstream.v1_url, models=[]),
    }))
    assert served_by(gw, "sim-large") == {"sim"}
    assert served_by(gw, "tiny-sim") == {"sim"}
    assert served_by(gw, "gpt-4.1") == {"oa"}
    assert post(gw.v1 + "/chat/completions", chat_body("simulated")).status == 404


def test_models_retrieve_answers_listed_and_family_models(gateway, mock_upstream):
    gw = gateway(make_config({"oa": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"]),
                              "sim": {"api_format": "mock", "model_patterns": ["sim-*"]}}))
    client = sdk(gw)
    listed = client.models.retrieve("gpt-4o-mini")
    assert listed.id == "gpt-4o-mini" and listed.owned_by == "oa" and listed.object == "model"
    family = client.models.retrieve("sim-2027")
    assert family.id == "sim-2027" and family.owned_by == "sim"
    by_provider = client.models.retrieve("oa/some-model")
    assert by_provider.owned_by == "oa"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nothing-serves-this")
    # An id with '/' (percent-encoded by the SDK or not).
    assert get(gw.url("/v1/models/oa%2Fother")).json()["id"] == "oa/other"


def test_the_model_list_shows_what_the_calling_key_may_use(gateway, mock_upstream):
    cfg = make_config({"oa": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini", "gpt-4o", "gpt-4.1"])},
                      auth={"enabled": True, "keys": [
                          {"name": "narrow", "key": CLIENT_KEY, "models": ["gpt-4o-mini", "gpt-4.1"]},
                          {"name": "wide", "key": CLIENT_KEY + "-wide"}]})
    gw = gateway(cfg)
    narrow = sorted(m.id for m in sdk(gw, CLIENT_KEY).models.list())
    assert narrow == ["gpt-4.1", "gpt-4o-mini"]
    wide = sorted(m.id for m in sdk(gw, CLIENT_KEY + "-wide").models.list())
    assert wide == ["gpt-4.1", "gpt-4o", "gpt-4o-mini"]
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gw, CLIENT_KEY).models.retrieve("gpt-4o")
    assert sdk(gw, CLIENT_KEY).models.retrieve("gpt-4.1").id == "gpt-4.1"
    with pytest.raises(openai.AuthenticationError):
        sdk(gw, "sk-wrong").models.list()


def test_discovery_follows_the_server_on_a_miss_and_periodically(gateway, make_mock):
    local = make_mock()
    local.models = ["llama3.2:3b"]
    cfg = make_config({"local": {"type": "vllm", "api_format": "openai", "base_url": local.base_url,
                                 "discovery_interval": "1s"}})
    gw = gateway(cfg)
    client = sdk(gw)
    assert [m.id for m in client.models.list()] == ["llama3.2:3b"]
    # A model pulled after start: the first request for it asks the server again and is served.
    local.models.append("qwen3:8b")
    completion = client.chat.completions.create(model="qwen3:8b", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content and local.requests[-1].body["model"] == "qwen3:8b"
    # Periodically, without any request: the list follows the server (a model removed, one added).
    local.models = ["mistral-small:24b"]
    assert wait_until(lambda: [m.id for m in client.models.list()] == ["mistral-small:24b"], timeout=6)
    # A miss for a model the server does not have is a 404 after asking (no hang).
    started = time.monotonic()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="not-pulled", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 5


def test_auto_discover_opts_a_provider_in_and_out(gateway, make_mock):
    hosted, local = make_mock(), make_mock()
    hosted.models, local.models = ["together-model-x"], ["local-model-y"]
    gw = gateway(make_config({
        "hosted": {"type": "together", "api_format": "openai", "api_key": "k", "base_url": hosted.v1_url,
                   "auto_discover": True},
        "local": {"type": "ollama", "api_format": "openai", "base_url": local.base_url, "auto_discover": False,
                  "models": ["pinned-local"]},
    }))
    ids = {m["id"] for m in get(gw.url("/v1/models")).json()["data"]}
    assert "together-model-x" in ids and "local-model-y" not in ids and "pinned-local" in ids
