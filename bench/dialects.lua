-- wrk script for bench/dialects.sh: POST one client dialect's request body (bench/dialects/*.json)
-- with the headers that dialect's SDK sends.
--
-- Environment:
--   BENCH_BODY     path of the request body (one line of JSON holding "stream":false)
--   BENCH_MODEL    if set, the value of the body's first "model" field is replaced by it (the same
--                  body is routed to a translating or a pass-through provider by its model)
--   BENCH_STREAM   "1": send "stream": true (the mock then answers with SSE)
--   BENCH_DIALECT  "messages": Anthropic SDK headers (x-api-key, anthropic-version);
--                  anything else: Authorization: Bearer (OpenAI SDKs)
--   BENCH_KEY      the key sent either way (default sk-prism-bench)
--
-- When wrk finishes it prints the same line as chat.lua:
--   BENCH_RESULT requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=.. errors=E
--                non2xx=.. connect=.. read=.. write=.. timeout=..

local function load_body()
  local path = assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set")
  local f = assert(io.open(path, "rb"))
  local body = f:read("*a"):gsub("%s+$", "")
  f:close()
  local model = os.getenv("BENCH_MODEL")
  if model and model ~= "" then
    local n
    body, n = body:gsub('"model"%s*:%s*"[^"]*"', function() return '"model":"' .. model .. '"' end, 1)
    assert(n == 1, "request body has no \"model\" to replace")
  end
  if os.getenv("BENCH_STREAM") == "1" then
    local n
    body, n = body:gsub('"stream"%s*:%s*false', '"stream":true')
    assert(n == 1, "request body has no \"stream\":false to turn on")
  end
  return body
end

local key = os.getenv("BENCH_KEY") or "sk-prism-bench"
wrk.method = "POST"
wrk.body = load_body()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "prism-bench (wrk)"
if os.getenv("BENCH_DIALECT") == "messages" then
  wrk.headers["x-api-key"] = key
  wrk.headers["anthropic-version"] = "2023-06-01"
else
  wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    "BENCH_RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors, e.status, e.connect, e.read, e.write, e.timeout))
end
