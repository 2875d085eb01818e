-- POST /api/v1/auth/login with the right password, rotating over the
-- usernames in $BENCH_FILE. With $BENCH_OUT set, the pending tokens handed
-- out are written there (one per line) at the end.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }
local bodies, n, i = {}, 0, 0
collect = os.getenv("BENCH_OUT") ~= nil
tokens = {}
function init(args)
  for _, row in ipairs(my_lines(os.getenv("BENCH_FILE"))) do
    table.insert(bodies, string.format('{"username":"%s","password":"%s"}', row[1], password))
  end
  n = #bodies
end
function request()
  mark_request()
  i = i + 1
  return wrk.format("POST", API .. "/auth/login", headers, bodies[(i % n) + 1])
end
function response(status, hdrs, body)
  count(status, body)
  if status == 200 then
    good()
    if collect then
      local token = string.match(body, '"pending_token"%s*:%s*"([^"]+)"')
      if token then tokens[#tokens + 1] = token end
    end
  end
end
function done(summary, latency, requests)
  report(summary, latency)
  local out = os.getenv("BENCH_OUT")
  if out then
    local f = assert(io.open(out, "w"))
    local total = 0
    for _, t in ipairs(THREADS) do
      for _, token in ipairs(t:get("tokens") or {}) do f:write(token, "\n"); total = total + 1 end
    end
    f:close()
    io.write(string.format("COLLECTED %d\n", total))
  end
end
