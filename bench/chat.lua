-- wrk script for the Prism benchmark: POST bench/chat_request.json (an OpenAI chat
-- request, model gpt-4o-mini) with an Authorization: Bearer header.
--
-- Environment:
--   BENCH_BODY     path of the request body (default: chat_request.json in the current dir)
--   BENCH_STREAM   "1": send "stream": true (the mock then answers with SSE)
--   BENCH_KEY      bearer token (default sk-prism-bench)
--
-- When wrk finishes it prints one line for run.sh to parse:
--   BENCH_RESULT requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. max_us=.. errors=E
--                non2xx=.. connect=.. read=.. write=.. timeout=..
-- Latency is wrk's: request sent -> last byte of the response (for SSE: end of the stream).

local function load_body()
  local path = os.getenv("BENCH_BODY") or "chat_request.json"
  local f = assert(io.open(path, "rb"))
  local body = f:read("*a"):gsub("%s+$", "")
  f:close()
  if os.getenv("BENCH_STREAM") == "1" then
    local n
    body, n = body:gsub('"stream"%s*:%s*false', '"stream":true')
    assert(n == 1, "request body has no \"stream\":false to turn on")
  end
  return body
end

wrk.method = "POST"
wrk.body = load_body()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-prism-bench")
wrk.headers["User-Agent"] = "prism-bench (wrk)"

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
