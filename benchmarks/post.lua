-- wrk script: POST the JSON body read from the file named by the first script argument,
-- then print one line "BENCH_RESULT {...}" with the figures the benchmark parses.
-- Usage: wrk -t1 -c16 -d10s -s post.lua http://127.0.0.1:PORT/predict -- BODY.json

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open body file " .. tostring(args[1]))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "non_2xx": %d, ' ..
    '"latency_mean_us": %.1f, "latency_p50_us": %d, "latency_p90_us": %d, ' ..
    '"latency_p99_us": %d, "latency_max_us": %d}\n',
    summary.duration, summary.requests, summary.bytes, errors.connect, errors.read,
    errors.write, errors.timeout, errors.status, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end
