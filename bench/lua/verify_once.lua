-- POST /api/v1/2fa/verify with the RIGHT code, once per (pending token,
-- code) line of $BENCH_FILE: each line is a different user, so every
-- success writes a session. Used for both the first-enable verify (users
-- enabling 2FA) and the enrolled sign-in (users with 2FA on, fresh code).
-- good = 200 with an access_token; the rate is successes / (last success -
-- first request). A thread that has sent all its lines idles on /healthz
-- (1 request/s per connection) until its answers are in; when every
-- thread's are, wrk stops early (finished() in common.lua), so -d is an
-- upper bound. With $BENCH_OUT set, the access token and device token of
-- each success are written there (tab-separated, one line each) at the end.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local reqs, n, i = {}, 0, 0
local answered = 0
local collect = os.getenv("BENCH_OUT") ~= nil
exhausted = false
grants = {}
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
    if answered >= n then finished() end
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
  answered = answered + 1
  count(status, resp)
  if status == 200 and string.find(resp, '"access_token"', 1, true) then
    good()
    if collect then
      local access = string.match(resp, '"access_token"%s*:%s*"([^"]+)"') or "-"
      local device = string.match(resp, '"device_token"%s*:%s*"([^"]+)"') or "-"
      grants[#grants + 1] = access .. "\t" .. device
    end
  end
  if answered >= n then finished() end
end
function done(summary, latency, requests)
  report(summary, latency)
  local out = os.getenv("BENCH_OUT")
  if out then
    local f = assert(io.open(out, "w"))
    for _, t in ipairs(THREADS) do
      for _, line in ipairs(t:get("grants") or {}) do f:write(line, "\n") end
    end
    f:close()
  end
end
