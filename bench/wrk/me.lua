-- GET /api/me (or another PATH) over many sessions:
-- `wrk ... -s me.lua -- FILE bearer|cookie [PATH]` (FILE holds one token or
-- sealed cookie a line).
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local common = require("common")

setup = common.setup
done = common.done

function init(args)
  credentials = common.lines(args[1])
  mode = args[2]
  path = args[3] or "/api/me"
  statuses = {}
  next_one = (id or 1) * 7919 % #credentials
end

function request()
  next_one = next_one % #credentials + 1
  local headers = {}
  if mode == "cookie" then
    headers["Cookie"] = "authd_session=" .. credentials[next_one]
  else
    headers["Authorization"] = "Bearer " .. credentials[next_one]
  end
  return wrk.format("GET", path, headers)
end

function response(status)
  common.count(status)
end
