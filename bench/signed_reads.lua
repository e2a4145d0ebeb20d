-- wrk script of `bench/reads.py --secure`: replays pre-signed GETs, each exactly once.
--   wrk -t2 -c64 -d10s -s bench/signed_reads.lua http://host:port -- FILE_PREFIX API_KEY_ID
-- Thread k reads FILE_PREFIX.k: one request a line, "path<TAB>timestamp<TAB>nonce<TAB>signature",
-- signed in Python (wrk's Lua has no HMAC) just before the run. A nonce may be used once, so a
-- thread that runs out does not start over: it counts `exhausted` and sends an unsigned request,
-- which the server refuses (401) and the bench reports as a failure.
local threads = {}
local created = 0

function setup(thread)
  created = created + 1
  thread:set("index", created)
  table.insert(threads, thread)
end

function init(args)
  paths, stamps, nonces, signatures = {}, {}, {}, {}
  local n = 0
  for line in io.lines(args[1] .. "." .. index) do
    local path, stamp, nonce, signature = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
    n = n + 1
    paths[n], stamps[n], nonces[n], signatures[n] = path, stamp, nonce, signature
  end
  count = n
  key_id = args[2]
  position = 0
  exhausted = 0
end

function request()
  position = position + 1
  if position > count then
    exhausted = exhausted + 1
    return wrk.format("GET", paths[1])
  end
  return wrk.format("GET", paths[position], {
    ["X-Api-Key"] = key_id,
    ["X-Timestamp"] = stamps[position],
    ["X-Nonce"] = nonces[position],
    ["X-Signature"] = signatures[position],
  })
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + thread:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": %d, "non_2xx": %d, "p50_ms": %.3f, "p99_ms": %.3f, "wrapped": %d}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, wraps))
end
