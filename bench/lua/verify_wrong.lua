-- POST /api/v1/2fa/verify with a WRONG code ($BENCH_CODE, default 000000),
-- round-robin over the pending tokens in $BENCH_FILE, at most 5 tries per
-- token (the fifth kills it). This is the rejected-code path: token check,
-- pending+user read, secret decryption, 3 TOTP HMACs, and a write
-- transaction (failure count + otp_failed event). good = 401 invalid_otp.
-- When a thread has used up its tokens it idles on /healthz (1 request/s
-- per connection), so the rate is taken over the window of good answers.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local code = os.getenv("BENCH_CODE") or "000000"
local body = string.format('{"code":"%s"}', code)
local tries = tonumber(os.getenv("BENCH_TRIES") or "5")
local headers, n, i = {}, 0, 0
exhausted = false
function init(args)
  for _, row in ipairs(my_lines(os.getenv("BENCH_FILE"))) do
    table.insert(headers, { ["Authorization"] = "Bearer " .. row[1], ["Content-Type"] = "application/json" })
  end
  n = #headers
end
function request()
  if is_probe() then return wrk.format("GET", "/healthz") end
  mark_request()
  if i >= n * tries then
    exhausted = true
    return wrk.format("GET", "/healthz")
  end
  local h = headers[(i % n) + 1]
  i = i + 1
  return wrk.format("POST", API .. "/2fa/verify", h, body)
end
function delay()
  if exhausted then return 1000 end
  return 0
end
function response(status, hdrs, resp)
  if is_health(status, resp) then return end -- idle /healthz
  local c = count(status, resp)
  if status == 401 and c == "invalid_otp" then good() end
end
function done(summary, latency, requests)
  local ran_out = 0
  for _, t in ipairs(THREADS) do if t:get("exhausted") then ran_out = ran_out + 1 end end
  report(summary, latency, "threads_out_of_tokens=" .. ran_out)
end
