-- POST /api/login over many users: `wrk ... -s login.lua -- USERS_FILE`.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

setup = common.setup
done = common.done

function init(args)
  users = common.lines(args[1])
  statuses = {}
  next_one = (id or 1) * 104729 % #users
end

function request()
  next_one = next_one % #users + 1
  local body = '{"username":"' .. users[next_one] .. '","password":"bench-password"}'
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = common.client()}
  return wrk.format("POST", "/api/login", headers, body)
end

function response(status)
  common.count(status)
end
