"""Cost tracking: x-prism-cost = usage × price (cached input priced as cached), in answers, in a
stream's usage chunk (`usage.cost`), in the request log and in prism_cost_usd_total; 0 for a cache
hit, absent for a model without a price or with cost tracking off; the shipped price table."""

import json
import re
from pathlib import Path

from prism_helpers import SSEStream, chat_body, get, make_config, openai_provider, parse_chunks, post, wait_until

REPO = Path(__file__).resolve().parents[2]
PRICES = {"gpt-4o-mini": {"input_per_mtok": 2, "output_per_mtok": 10, "cached_input_per_mtok": 0.5}}
KEY = "sk-prism-cost-client-0001"


def config(mock, **sections):
    sections.setdefault("cost_tracking", {"custom_pricing": PRICES})
    return make_config({"up": openai_provider(mock.v1_url, models=["gpt-4o-mini", "gpt-4o", "no-price-model"])},
                       **sections)


def test_an_answer_carries_its_cost(gateway, mock_upstream):
    mock_upstream.prompt_tokens, mock_upstream.completion_tokens, mock_upstream.cached_tokens = 1000, 200, 400
    gw = gateway(config(mock_upstream))
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert answer.status == 200
    # 600 uncached × $2 + 400 cached × $0.5 + 200 output × $10, per million tokens.
    assert answer.headers["x-prism-cost"] == "0.0034", answer.headers
    line = gw.wait_for_log(r"request id=\S+ .* cost=(\S+)")
    assert line.group(1) == "0.0034"


def test_a_stream_gets_its_cost_in_the_usage_chunk(gateway, mock_upstream):
    mock_upstream.prompt_tokens, mock_upstream.completion_tokens = 1000, 200
    gw = gateway(config(mock_upstream))
    body = chat_body("gpt-4o-mini", stream=True, stream_options={"include_usage": True})
    with SSEStream(gw.v1 + "/chat/completions", body) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["cost"] == 0.004 and usage[-1]["prompt_tokens"] == 1000, usage
    assert gw.wait_for_log(r"request id=\S+ .* cost=(\S+)").group(1) == "0.004"
    # Without include_usage there is no usage chunk: the request log and the metric have it.
    with SSEStream(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", stream=True)) as stream:
        chunks, done = parse_chunks(stream.read_all())
    assert done and not any(c.get("usage") for c in chunks)
    metrics = get(gw.url("/-/metrics")).text
    sample = re.search(r'prism_cost_usd_total\{[^}]*model="gpt-4o-mini"[^}]*\} (\S+)', metrics)
    assert sample and abs(float(sample.group(1)) - 0.008) < 1e-9, metrics[-1500:]
    assert 'provider="up"' in sample.group(0) and 'key="-"' in sample.group(0)


def test_a_cache_hit_costs_nothing_and_an_unpriced_model_has_no_header(gateway, mock_upstream):
    gw = gateway(config(mock_upstream, cache={"enabled": True}))
    first = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "same question"))
    second = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini", "same question"))
    assert first.headers["x-prism-cache"] == "miss" and float(first.headers["x-prism-cost"]) > 0
    assert second.headers["x-prism-cache"] == "hit" and second.headers["x-prism-cost"] == "0"
    unpriced = post(gw.v1 + "/chat/completions", chat_body("no-price-model"))
    assert unpriced.status == 200 and "x-prism-cost" not in unpriced.headers


def test_cost_tracking_can_be_turned_off(gateway, mock_upstream):
    gw = gateway(config(mock_upstream, cost_tracking={"enabled": False, "custom_pricing": PRICES}))
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert answer.status == 200 and "x-prism-cost" not in answer.headers


def test_a_bad_custom_price_is_a_config_error(run_prism, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("providers: {}\ncost_tracking:\n  custom_pricing:\n    m: {input_per_mtok: cheap}\n")
    result = run_prism("validate", "--config", str(path))
    assert result.returncode == 1 and "cost_tracking.custom_pricing.m.input_per_mtok" in result.stderr, result.stderr


def test_the_shipped_price_table_is_dated_sourced_and_used_by_default(gateway, mock_upstream):
    table = json.loads((REPO / "config" / "prices.json").read_text())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table["as_of"]) and table["sources"]
    for model in ["gpt-4o-mini", "claude-sonnet-4-20250514", "gemini-2.5-flash"]:
        assert table["models"][model]["input"] > 0, model
    mini = table["models"]["gpt-4o-mini"]
    mock_upstream.prompt_tokens, mock_upstream.completion_tokens = 1_000_000, 1_000_000
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url, models=["gpt-4o-mini"])}))
    answer = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini"))
    assert float(answer.headers["x-prism-cost"]) == round(mini["input"] + mini["output"], 8)
    # A dated id shares its family's price (the table's prefixes).
    dated = post(gw.v1 + "/chat/completions", chat_body("gpt-4o-mini-2024-07-18"))
    assert dated.status == 200 and dated.headers["x-prism-cost"] == answer.headers["x-prism-cost"]
