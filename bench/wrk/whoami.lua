-- wrk script: GET with $BENCH_AUTH, or (BENCH_RANDOM_KEY_CHARS=n) a new random `igw_` key of n
-- characters on every request; prints a JSON summary line with the count of each status.
local auth = os.getenv("BENCH_AUTH") or ""
local random_chars = tonumber(os.getenv("BENCH_RANDOM_KEY_CHARS") or "0")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local threads = {}
local fixed = nil

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  if random_chars == 0 then
    fixed = wrk.format("GET", nil, {["Authorization"] = auth})
  end
end

-- Both modes build requests here, so the driver does comparable work for each.
function request()
  if fixed ~= nil then
    return fixed
  end
  local chars = {}
  for i = 1, random_chars do
    local r = math.random(1, 64)
    chars[i] = alphabet:sub(r, r)
  end
  return wrk.format("GET", nil, {["Authorization"] = "Bearer igw_" .. table.concat(chars)})
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

done = function(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "statuses": {%s}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    table.concat(parts, ", ")))
end
