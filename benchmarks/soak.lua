-- wrk script for the soak: POST a body on every request and, with a second body, that one on
-- every EVERY-th request instead; stop after LIMIT answers (per wrk thread), then print one line
-- "BENCH_RESULT {...}" with the figures benchmarks/soak.py parses. Use one wrk thread (-t1):
-- the first thread to reach its LIMIT ends the whole run.
-- Usage: wrk -t1 -c64 -d60s -s soak.lua http://127.0.0.1:PORT/predict -- LIMIT BODY.json [EVERY LARGE.json]

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function request_for(path)
  local file = assert(io.open(path, "rb"), "cannot open body file " .. tostring(path))
  local body = file:read("*a")
  file:close()
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

-- Globals, not locals: done() runs in another Lua state and reads them with thread:get().
function init(args)
  limit = tonumber(args[1])
  small = request_for(args[2])
  every = tonumber(args[3] or "0")
  if every > 0 then
    large = request_for(args[4])
  end
  sent = 0
  answered = 0
  non_2xx = 0
end

function request()
  sent = sent + 1
  if every > 0 and sent % every == 0 then
    return large
  end
  return small
end

-- wrk's own status error count starts at 400; a soak wants anything but 2xx counted.
function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
  if answered == limit then
    wrk.thread:stop()
    -- wrk's main thread would sleep out the whole -d window; this asks soak.py to wake it.
    io.write("BENCH_STOP\n")
    io.flush()
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non_2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
    '"non_2xx": %d, "latency_mean_us": %.1f, "latency_p50_us": %d, "latency_p90_us": %d, ' ..
    '"latency_p99_us": %d, "latency_p999_us": %d, "latency_max_us": %d}\n',
    summary.duration, summary.requests, summary.bytes, errors.connect, errors.read,
    errors.write, errors.timeout, errors.status, bad, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
