-- GET /api/me (or another PATH) over many sessions:
-- `wrk ... -s me.lua -- FILE bearer|cookie [PATH [ORDER [LIMIT]]]` (FILE
-- holds one token or sealed cookie a line; only its first LIMIT lines are
-- used when LIMIT is given). ORDER picks the credential of each request:
--
-- - `walk` (the default): the lines in turn, each thread from its own place;
-- - `uniform`: any line, uniformly at random;
-- - `zipf`: line k with a probability proportional to 1/k (Zipf, s = 1);
-- - `once`: the lines in turn, once, then the thread stops (run it with one
--   thread: it is for filling a cache with every line).
--
-- It counts statuses by class only, from wrk's own counters (see
-- common.done): a `response` callback makes wrk copy every header and the
-- body into Lua for each answer, which cost wrk 5 µs of CPU an answer of
-- authd's (1 µs of the bare handler's, whose answer has three headers), on
-- the two cores it shares with the server it measures.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

setup = common.setup
done = common.done

-- The cumulative probabilities of ranks 1..n under Zipf(1).
local function zipf_cdf(n)
  local cdf, total = {}, 0
  for k = 1, n do
    total = total + 1 / k
    cdf[k] = total
  end
  for k = 1, n do cdf[k] = cdf[k] / total end
  return cdf
end

-- The first rank whose cumulative probability reaches a uniform draw.
local function zipf_rank(cdf)
  local u, low, high = math.random(), 1, #cdf
  while low < high do
    local middle = math.floor((low + high) / 2)
    if cdf[middle] < u then low = middle + 1 else high = middle end
  end
  return low
end

local pick = {
  walk = function()
    next_one = next_one % #credentials + 1
    return next_one
  end,
  uniform = function() return math.random(#credentials) end,
  zipf = function() return zipf_rank(cdf) end,
  once = function()
    if next_one >= #credentials then
      wrk.thread:stop()
      return #credentials
    end
    next_one = next_one + 1
    return next_one
  end,
}

function init(args)
  credentials = common.lines(args[1], tonumber(args[5]))
  mode = args[2]
  path = args[3] or "/api/me"
  order = pick[args[4] or "walk"] or error("unknown ORDER " .. args[4])
  -- Each thread its own draws, and its own place in the walk.
  math.randomseed(os.time() * 1000 + (id or 1) * 7919)
  next_one = args[4] == "once" and 0 or (id or 1) * 7919 % #credentials
  if args[4] == "zipf" then cdf = zipf_cdf(#credentials) end
end

function request()
  local credential = credentials[order()]
  local headers = {}
  if mode == "cookie" then
    headers["Cookie"] = "authd_session=" .. credential
  else
    headers["Authorization"] = "Bearer " .. credential
  end
  return wrk.format("GET", path, headers)
end
