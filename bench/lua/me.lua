-- GET /api/v1/me, rotating over the access tokens in $BENCH_FILE (one per
-- line). No response() hook, to keep the client as cheap as for /healthz:
-- wrongs show up as non2xx in the BENCH line.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local headers, n, i = {}, 0, 0
function init(args)
  for _, row in ipairs(my_lines(os.getenv("BENCH_FILE"))) do
    table.insert(headers, { ["Authorization"] = "Bearer " .. row[1] })
  end
  n = #headers
  i = thread_id -- threads start at different tokens
end
function request()
  i = i + 1
  return wrk.format("GET", API .. "/me", headers[(i % n) + 1])
end
