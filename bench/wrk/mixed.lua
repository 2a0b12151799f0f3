-- The mixed workload: 90 % GET /api/me over the seeded sessions, 5 % logins
-- of many users, 5 % logouts of sessions those logins made:
-- `wrk ... -s mixed.lua -- TOKENS_FILE USERS_FILE`.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

setup = common.setup
done = common.done

function init(args)
  tokens = common.lines(args[1])
  users = common.lines(args[2])
  statuses = {}
  fresh = {}
  n = (id or 1) * 7919
end

function request()
  n = n + 1
  local roll = n % 20
  if roll == 0 then
    local user = users[n % #users + 1]
    local body = '{"username":"' .. user .. '","password":"bench-password"}'
    local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = common.client()}
    return wrk.format("POST", "/api/login", headers, body)
  elseif roll == 10 and #fresh > 0 then
    local token = table.remove(fresh)
    return wrk.format("POST", "/api/logout", {["Authorization"] = "Bearer " .. token})
  end
  return wrk.format("GET", "/api/me", {["Authorization"] = "Bearer " .. tokens[n % #tokens + 1]})
end

function response(status, headers, body)
  common.count(status)
  -- Only a login's answer holds an access token.
  if status == 200 and body then
    local token = body:match('"access_token":"([^"]+)"')
    if token then fresh[#fresh + 1] = token end
  end
end
