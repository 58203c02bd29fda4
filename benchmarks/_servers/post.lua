-- wrk script for benchmarks/serving.py: POSTs JSON bodies and prints the result as JSON.
--
-- Environment:
--   BENCH_BODIES  file with one JSON request body per line; requests cycle through them
--   BENCH_PATH    request path, e.g. /v1/models/NAME/predict
--   BENCH_AUTH    optional API key, sent as "Authorization: Bearer <key>"
--
-- Every request is formatted once in init(), so wrk spends no Lua time per request
-- beyond picking the next one. done() prints one line starting with "WRKJSON ".

local bodies_file = os.getenv("BENCH_BODIES")
local path = os.getenv("BENCH_PATH") or "/"
local auth = os.getenv("BENCH_AUTH")
local prepared = {}
local index = 0

function init(args)
  for line in io.lines(bodies_file) do
    if #line > 0 then
      local headers = {["Content-Type"] = "application/json"}
      if auth ~= nil and auth ~= "" then
        headers["Authorization"] = "Bearer " .. auth
      end
      table.insert(prepared, wrk.format("POST", path, headers, line))
    end
  end
  if #prepared == 0 then
    error("no request bodies in " .. tostring(bodies_file))
  end
  -- Threads start at different offsets so two threads do not send the same rows in step.
  index = math.random(#prepared) - 1
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "p50": %d, "p90": %d, '
    .. '"p99": %d, "p999": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
