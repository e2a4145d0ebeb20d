-- wrk script of bench/reads.py phase (c2): POST /graphql, one getCustomer query per request over a
-- list of ids (as bench/reads.lua: thread k of T reads ids k, k+T, ...), one JSON line at the end.
--   wrk -t2 -c64 -d10s -s bench/graphql_reads.lua http://host:port -- IDS_FILE MERCHANT_ID THREADS
-- A GraphQL error is a 200 too: the phase checks instead that the worker's table answered at least
-- as many reads as wrk counted (core_customer_reads_total), and one query's answer before it.
local threads = {}
local created = 0

function setup(thread)
  created = created + 1
  thread:set("offset", created)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    ids[#ids + 1] = line
  end
  merchant = args[2]
  stride = tonumber(args[3])
  position = offset
  wrapped = 0
  headers = {["Content-Type"] = "application/json"}
end

function request()
  local id = ids[position]
  position = position + stride
  if position > #ids then
    position = offset
    wrapped = wrapped + 1
  end
  local body = '{"query":"query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c) '
    .. '{ id rfm_score metadata updated_at } }","variables":{"m":"' .. merchant .. '","c":"' .. id .. '"}}'
  return wrk.format("POST", "/graphql", headers, body)
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + thread:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": %d, "non_2xx": %d, "p50_ms": %.3f, "p99_ms": %.3f, "wrapped": %d}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, wraps))
end
