-- GET /healthz, static request (no Lua per request); prints the BENCH line.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/healthz"
