-- POST /api/v1/2fa/verify with the RIGHT code, once per (pending token,
-- code) line of $BENCH_FILE: each is a different user enabling 2FA, so
-- every success writes a session. good = 200 with an access_token; the rate
-- is successes / (last success - first request). A thread that has sent all
-- its lines idles on /healthz (1 request/s per connection).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local reqs, n, i = {}, 0, 0
exhausted = false
function init(args)
  for _, row in ipairs(my_lines(os.getenv("BENCH_FILE"))) do
    table.insert(reqs, wrk.format("POST", API .. "/2fa/verify",
      { ["Authorization"] = "Bearer " .. row[1], ["Content-Type"] = "application/json" },
      string.format('{"code":"%s"}', row[2])))
  end
  n = #reqs
end
function request()
  if is_probe() then return wrk.format("GET", "/healthz") end
  mark_request()
  if i >= n then
    exhausted = true
    return wrk.format("GET", "/healthz")
  end
  i = i + 1
  return reqs[i]
end
function delay()
  if exhausted then return 1000 end
  return 0
end
function response(status, hdrs, resp)
  if is_health(status, resp) then return end -- idle /healthz
  count(status, resp)
  if status == 200 and string.find(resp, '"access_token"', 1, true) then good() end
end
