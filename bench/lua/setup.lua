-- POST /api/v1/2fa/setup, rotating over the pending tokens in $BENCH_FILE.
-- The first call per token creates and stores the secret; every later one
-- reads and decrypts it and renders the QR PNG again.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local headers, n, i = {}, 0, 0
function init(args)
  for _, row in ipairs(my_lines(os.getenv("BENCH_FILE"))) do
    table.insert(headers, { ["Authorization"] = "Bearer " .. row[1] })
  end
  n = #headers
end
function request()
  mark_request()
  i = i + 1
  return wrk.format("POST", API .. "/2fa/setup", headers[(i % n) + 1])
end
function response(status, hdrs, body)
  count(status, body)
  if status == 200 then good() end
end
