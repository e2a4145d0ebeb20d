-- wrk script of bench/reads.py: GET <prefix><id> over a list of ids, one JSON line at the end.
--   wrk -t2 -c64 -d10s -s bench/reads.lua http://host:port -- IDS_FILE PATH_PREFIX THREADS [MERCHANT_ID]
-- With MERCHANT_ID (phase (c2)), each request is instead a GraphQL getCustomer query of that
-- merchant's next id, POSTed to PATH_PREFIX (/graphql); bench/reads_graphql.py holds the same query
-- and checks one answer, since a GraphQL error is a 200 too.
-- Thread k of T requests ids k, k+T, k+2T, ... so the threads never read the same id, and an id
-- is read twice only once the whole list has been read.
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
  prefix = args[2]
  stride = tonumber(args[3])
  merchant = args[4]
  headers = {["Content-Type"] = "application/json"}
  position = offset
  wrapped = 0
end

function request()
  local id = ids[position]
  position = position + stride
  if position > #ids then
    position = offset
    wrapped = wrapped + 1
  end
  if merchant then
    local body = '{"query":"query($m: ID!, $c: ID!) { getCustomer(merchant_id: $m, customer_id: $c) '
      .. '{ id rfm_score metadata updated_at } }","variables":{"m":"' .. merchant .. '","c":"' .. id .. '"}}'
    return wrk.format("POST", prefix, headers, body)
  end
  return wrk.format("GET", prefix .. id)
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
