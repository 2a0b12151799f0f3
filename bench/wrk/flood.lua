-- A hash flood: logins for random unknown users, every one a bcrypt verify
-- (of the dummy hash), all from one client address:
-- `wrk ... -s flood.lua -- ADDRESS`.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

setup = common.setup
done = common.done

function init(args)
  address = args[1]
  statuses = {}
  made = 0
end

function request()
  made = made + 1
  local body = string.format('{"username":"nobody-%d-%d-%d","password":"guess"}', id or 0, made, math.random(1, 1e9))
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address}
  return wrk.format("POST", "/api/login", headers, body)
end

function response(status)
  common.count(status)
end
