-- POST /api/register with a new account each time: `wrk ... -s register.lua -- RUN`.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

setup = common.setup
done = common.done

function init(args)
  run = args[1]
  statuses = {}
  made = 0
end

function request()
  made = made + 1
  local name = string.format("r%s_%d_%d", run, id or 0, made)
  local body = string.format(
    '{"username":"%s","email":"%s@example.com","password":"purple monkey dishwasher","password2":"purple monkey dishwasher"}',
    name, name)
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = common.client()}
  return wrk.format("POST", "/api/register", headers, body)
end

function response(status)
  common.count(status)
end
