"""The response cache (the `cache` middleware plugin) with the in-memory shared state: exact match
on the normalized request, per-request controls, streams replayed well-formed, only successful
answers stored, LRU at max_entries."""

import json
import time

import openai
import pytest

from prism_helpers import SSEStream, chat_body, make_config, openai_provider, parse_chunks, post, stream_text


def cache_config(upstream, **cache):
    settings = {"enabled": True, "default_ttl": "5m", "max_entries": 100}
    settings.update(cache)
    return make_config({"mockai": openai_provider(upstream.v1_url)}, cache=settings)


def chat(gw, body=None, headers=None):
    return post(gw.v1 + "/chat/completions", body or chat_body("gpt-4o-mini", "What is 2+2?"), headers=headers)


def read_stream(gw, body, headers=None):
    stream = SSEStream(gw.v1 + "/chat/completions", body, headers=headers)
    events = []
    while (event := stream.next_event()) is not None:
        events.append(event)
    return stream, events


@pytest.fixture
def gw(gateway, mock_upstream):
    return gateway(cache_config(mock_upstream))


def test_miss_then_hit_without_calling_the_provider(gw, mock_upstream):
    first = chat(gw)
    assert first.status == 200 and first.headers["x-prism-cache"] == "miss"
    second = chat(gw)
    assert second.status == 200 and second.headers["x-prism-cache"] == "hit"
    assert second.json() == first.json()
    assert len(mock_upstream.chat_requests()) == 1
    # Member order does not matter; a different parameter does.
    reordered = {"messages": [{"content": "What is 2+2?", "role": "user"}], "model": "gpt-4o-mini"}
    assert chat(gw, reordered).headers["x-prism-cache"] == "hit"
    assert chat(gw, chat_body("gpt-4o-mini", "What is 2+2?", temperature=0.5)).headers["x-prism-cache"] == "miss"
    assert chat(gw, chat_body("gpt-4o", "What is 2+2?")).headers["x-prism-cache"] == "miss"
    assert len(mock_upstream.chat_requests()) == 3


def test_no_store_force_refresh_namespace_and_ttl(gw, mock_upstream):
    assert chat(gw).headers["x-prism-cache"] == "miss"
    skipped = chat(gw, headers={"Cache-Control": "no-store"})
    assert skipped.headers["x-prism-cache"] == "skip"
    assert len(mock_upstream.chat_requests()) == 2
    refreshed = chat(gw, headers={"x-prism-cache-force-refresh": "true"})
    assert refreshed.headers["x-prism-cache"] == "miss"
    assert len(mock_upstream.chat_requests()) == 3
    assert chat(gw).headers["x-prism-cache"] == "hit"
    # Namespaces are separate caches.
    assert chat(gw, headers={"x-prism-cache-namespace": "team-b"}).headers["x-prism-cache"] == "miss"
    assert chat(gw, headers={"x-prism-cache-namespace": "team-b"}).headers["x-prism-cache"] == "hit"
    # A short per-request TTL expires.
    body = chat_body("gpt-4o-mini", "short lived")
    assert chat(gw, body, headers={"x-prism-cache-ttl": "1"}).headers["x-prism-cache"] == "miss"
    assert chat(gw, body).headers["x-prism-cache"] == "hit"
    time.sleep(1.3)
    assert chat(gw, body).headers["x-prism-cache"] == "miss"


def test_only_successful_answers_are_stored(gw, mock_upstream):
    mock_upstream.fail_with(500, "upstream broke")
    failed = chat(gw, chat_body("gpt-4o-mini", "fragile"))
    assert failed.status >= 500
    mock_upstream.error = None
    retry = chat(gw, chat_body("gpt-4o-mini", "fragile"))
    assert retry.status == 200 and retry.headers["x-prism-cache"] == "miss"
    assert chat(gw, chat_body("gpt-4o-mini", "fragile")).headers["x-prism-cache"] == "hit"


def test_stream_request_is_served_a_well_formed_stream_from_a_stored_answer(gw, mock_upstream):
    whole = chat(gw, chat_body("gpt-4o-mini", "stream me"))
    assert whole.headers["x-prism-cache"] == "miss"
    stream, events = read_stream(gw, chat_body("gpt-4o-mini", "stream me", stream=True,
                                               stream_options={"include_usage": True}))
    assert stream.status == 200 and stream.headers["x-prism-cache"] == "hit"
    assert stream.headers["content-type"].startswith("text/event-stream")
    chunks, done = parse_chunks(events)
    assert done
    assert stream_text(chunks) == whole.json()["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == whole.json()["usage"]["total_tokens"]
    assert len(mock_upstream.chat_requests()) == 1


def test_streamed_answer_is_stored_when_it_finished_and_serves_both_forms(gateway, mock_upstream):
    gw = gateway(cache_config(mock_upstream))
    body = chat_body("gpt-4o-mini", "streamed first", stream=True)
    stream, events = read_stream(gw, body)
    assert stream.headers["x-prism-cache"] == "miss"
    chunks, done = parse_chunks(events)
    assert done
    text = stream_text(chunks)
    assert text == mock_upstream.content
    # The same request without streaming: the assembled whole answer.
    whole = chat(gw, chat_body("gpt-4o-mini", "streamed first"))
    assert whole.headers["x-prism-cache"] == "hit"
    assert whole.json()["object"] == "chat.completion"
    assert whole.json()["choices"][0]["message"]["content"] == text
    # And the official SDK reads the replayed stream.
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0, timeout=15)
    replay = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "streamed first"}])
    assert "".join(c.choices[0].delta.content or "" for c in replay if c.choices) == text
    assert len(mock_upstream.chat_requests()) == 1


def test_a_stream_that_broke_is_never_stored(gw, mock_upstream):
    mock_upstream.die_after_chunks = 2
    body = chat_body("gpt-4o-mini", "will break", stream=True)
    _, events = read_stream(gw, body)
    assert any('"error"' in e for e in events)
    mock_upstream.die_after_chunks = None
    stream, events = read_stream(gw, body)
    assert stream.headers["x-prism-cache"] == "miss"
    chunks, done = parse_chunks(events)
    assert done and stream_text(chunks) == mock_upstream.content


def test_embeddings_are_cached(gw, mock_upstream):
    body = {"model": "text-embedding-3-small", "input": ["alpha", "beta"], "encoding_format": "float"}
    first = post(gw.v1 + "/embeddings", body)
    assert first.status == 200 and first.headers["x-prism-cache"] == "miss"
    second = post(gw.v1 + "/embeddings", body)
    assert second.headers["x-prism-cache"] == "hit" and second.json() == first.json()
    assert len(mock_upstream.recorded("/embeddings")) == 1


def test_max_entries_evicts_the_least_recently_used(gateway, mock_upstream):
    gw = gateway(cache_config(mock_upstream, max_entries=2))
    one, two, three = (chat_body("gpt-4o-mini", text) for text in ("one", "two", "three"))
    assert chat(gw, one).headers["x-prism-cache"] == "miss"
    assert chat(gw, two).headers["x-prism-cache"] == "miss"
    assert chat(gw, one).headers["x-prism-cache"] == "hit"  # one is now the most recent
    assert chat(gw, three).headers["x-prism-cache"] == "miss"  # evicts two
    assert chat(gw, one).headers["x-prism-cache"] == "hit"
    assert chat(gw, two).headers["x-prism-cache"] == "miss"


def test_cache_and_rate_limit_together(gateway, mock_upstream):
    key = "sk-prism-cached-client"
    cfg = make_config({"mockai": openai_provider(mock_upstream.v1_url)},
                      auth={"enabled": True, "keys": [{"name": "c", "key": key, "rate_limit_rpm": 3}]},
                      rate_limiting={"enabled": True}, cache={"enabled": True})
    gw = gateway(cfg)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [chat(gw, headers=headers) for _ in range(4)]
    # Cache hits still count as requests (the limit runs first in the default order).
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-prism-cache") for a in answers[:3]] == ["miss", "hit", "hit"]
    assert answers[3].headers["x-ratelimit-remaining-requests"] == "0"


def test_a_reused_request_id_cannot_cross_store_answers(gw, mock_upstream):
    """Per-request state is keyed by the host's per-request context, not by x-prism-request-id,
    which clients choose: two requests in flight with one id keep their own answers."""
    import threading
    mock_upstream.hold_response = True
    answers = {}

    def send(text):
        answers[text] = chat(gw, chat_body("gpt-4o-mini", text), headers={"x-prism-request-id": "same-id"})

    threads = [threading.Thread(target=send, args=(text,)) for text in ("prompt P", "prompt Q")]
    for thread in threads:
        thread.start()
    assert len(mock_upstream.wait_for_requests(2, timeout=5)) == 2
    mock_upstream.release.set()
    for thread in threads:
        thread.join(10)
    mock_upstream.hold_response = False
    for text in ("prompt P", "prompt Q"):
        assert answers[text].headers["x-prism-cache"] == "miss"
        again = chat(gw, chat_body("gpt-4o-mini", text))
        assert again.headers["x-prism-cache"] == "hit"
        assert again.json()["id"] == answers[text].json()["id"], text


def test_absurd_ttl_header_is_skipped_not_fatal(gw):
    for ttl in ("1e300", "inf", "-5", "nan", "99999999999999999999h"):
        assert chat(gw, headers={"x-prism-cache-ttl": ttl}).headers["x-prism-cache"] == "skip"
    assert chat(gw).status == 200


def _keys(*specs):
    return {"enabled": True, "keys": [{"name": name, "key": f"sk-prism-scope-{name}-0001", **({"owner": owner} if owner else {})}
                                      for name, owner in specs]}


def _ask(gw, name, content="the same private question"):
    return post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", content),
                headers={"Authorization": f"Bearer sk-prism-scope-{name}-0001"})


def test_by_default_an_answer_cached_for_one_key_is_not_served_to_another(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, cache={"enabled": True},
                             auth=_keys(("alice", "team-a"), ("bob", "team-a"))))
    assert _ask(gw, "alice").headers["x-prism-cache"] == "miss"
    assert _ask(gw, "alice").headers["x-prism-cache"] == "hit"
    assert _ask(gw, "bob").headers["x-prism-cache"] == "miss"  # same prompt, another key
    assert len(mock_upstream.chat_requests()) == 2


def test_cache_scope_owner_and_global(gateway, mock_upstream):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, cache={"enabled": True, "scope": "owner"},
                             auth=_keys(("alice", "team-a"), ("bob", "team-a"), ("carol", "team-b"))))
    assert _ask(gw, "alice").headers["x-prism-cache"] == "miss"
    assert _ask(gw, "bob").headers["x-prism-cache"] == "hit"     # same owner
    assert _ask(gw, "carol").headers["x-prism-cache"] == "miss"  # another owner
    gw2 = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)}, cache={"enabled": True, "scope": "global"},
                              auth=_keys(("alice", "team-a"), ("carol", "team-b"))))
    assert _ask(gw2, "alice", "shared question").headers["x-prism-cache"] == "miss"
    assert _ask(gw2, "carol", "shared question").headers["x-prism-cache"] == "hit"


def test_an_unknown_cache_scope_is_a_config_error(run_prism, tmp_path):
    path = tmp_path / "scope.yaml"
    path.write_text("providers: {}\ncache: {enabled: true, scope: everyone}\n")
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1 and "cache.scope" in result.stderr, result.stderr
