-- Shared by the scenarios: reading the seed files, and a summary as one
-- JSON line (requests/s, p50 and p99 in ms, statuses) that bench/run reads.

local common = {}

-- The non-empty lines of a file; only the first `limit` when given.
function common.lines(path, limit)
  local lines = {}
  for line in io.lines(path) do
    if limit and #lines >= limit then break end
    if line ~= "" then lines[#lines + 1] = line end
  end
  return lines
end

local threads = {}

function common.setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

-- Each thread counts statuses in `statuses` (a table of status -> count),
-- if its script has a `response` callback.
function common.count(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function common.done(summary, latency, requests)
  local counted = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses") or {}
    for status, n in pairs(seen) do
      counted[tostring(status)] = (counted[tostring(status)] or 0) + n
    end
  end
  if next(counted) == nil then
    -- A script that does not count (me.lua): wrk's own counts, by class.
    local failed = summary.errors.status
    counted["<400"] = summary.requests - failed
    if failed > 0 then counted[">=400"] = failed end
  end
  local parts = {}
  for status, n in pairs(counted) do
    parts[#parts + 1] = string.format('"%s":%d', status, n)
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d,"statuses":{%s}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ",")))
end

-- A client address for a request, as the trusted proxy in front of authd
-- would pass it (bench/run sets TRUSTED_PROXIES to loopback): spread over
-- 4096 addresses, so that the per-client caps (LOGIN_IN_FLIGHT_PER_IP, the
-- throttle) see many clients, as a real deployment does.
function common.client()
  return string.format("10.77.%d.%d", math.random(0, 15), math.random(1, 254))
end

return common
