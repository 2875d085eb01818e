-- Shared by the otpgate wrk scripts (loaded with dofile from each one).
--
-- Gives each wrk thread an id, a wall clock in microseconds (LuaJIT ffi),
-- counters of answers by "status code" (code = the problem+json `code`),
-- and a done() that merges the threads' counters and prints one
-- machine-readable line:
--   BENCH requests=.. duration_s=.. rps=.. good=.. good_rate=.. steady_rate=.. p50_ms=.. p99_ms=.. ...
-- plus one "COUNT <status> <code> <n>" line per kind of answer.
--
-- A script marks the answers it came for with good(); good_rate is
-- good / (last good answer - first request), steady_rate is
-- (good - 1) / (last good answer - first good answer), which leaves out the
-- time the first answer took (it matters when each request is slow).

local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")

function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC, shared by all threads
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

NTHREADS = tonumber(os.getenv("BENCH_THREADS") or "2")
API = "/api/v1"

-- main state: remember the threads and number them. DONE_FLAGS: one int
-- per thread, shared by all threads' Lua states (its address is passed to
-- each), for finished() below.
THREADS = {}
function setup(thread)
  if not DONE_FLAGS then
    DONE_FLAGS = ffi.new("int32_t[?]", 64)
  end
  thread:set("thread_id", #THREADS)
  thread:set("done_flags_addr", tonumber(ffi.cast("intptr_t", DONE_FLAGS)))
  table.insert(THREADS, thread)
end

-- A script that sends a fixed set of requests calls finished() when this
-- thread has had all its answers. When every thread has, wrk is sent
-- SIGINT, which ends its sleep(duration) early (wrk then stops the threads
-- and prints its results as usual), so -d is only an upper bound. Two
-- threads finishing at the same instant may each miss the other's flag;
-- the run then simply lasts the full -d.
pcall(ffi.cdef, [[
int getpid(void);
int kill(int pid, int sig);
]])
local finished_already = false
function finished()
  if finished_already then return end
  finished_already = true
  local flags = ffi.cast("volatile int32_t *", done_flags_addr)
  flags[thread_id] = 1
  for t = 0, NTHREADS - 1 do
    if flags[t] == 0 then return end
  end
  ffi.C.kill(ffi.C.getpid(), 2) -- SIGINT
end

-- per-thread state (globals so that done() can thread:get them)
thread_id = thread_id or 0
counts = {}
good_n = 0
first_req_us = 0
first_good_us = 0
last_good_us = 0

-- wrk calls request() once on thread 0's state right after init(), to
-- check the request's shape (script_verify_request), and never sends what
-- it returned. Scripts that must not lose a request (each is used once)
-- answer that call with a throwaway one: `if is_probe() then ... end`.
probed = false
function is_probe()
  if thread_id == 0 and not probed then
    probed = true
    return true
  end
  return false
end

function mark_request()
  if first_req_us == 0 then first_req_us = now_us() end
end

function good()
  local t = now_us()
  if first_good_us == 0 then first_good_us = t end
  last_good_us = t
  good_n = good_n + 1
end

function count(status, body)
  local code = body and string.match(body, '"code"%s*:%s*"([^"]*)"') or "-"
  local key = status .. " " .. code
  counts[key] = (counts[key] or 0) + 1
  return code
end

-- This thread's share of a file's lines (every NTHREADS-th line), each
-- split on tabs.
function my_lines(path)
  local rows, i = {}, 0
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in f:lines() do
    if line ~= "" then
      if i % NTHREADS == thread_id then
        local fields = {}
        for field in string.gmatch(line, "[^\t]+") do table.insert(fields, field) end
        table.insert(rows, fields)
      end
      i = i + 1
    end
  end
  f:close()
  return rows
end

-- done() helpers, main state
function is_health(status, body)
  return status == 200 and string.find(body, '"status"%s*:%s*"ok"') ~= nil
end

function merged()
  local all = { counts = {}, good = 0, first_req = nil, first_good = nil, last_good = nil }
  for _, t in ipairs(THREADS) do
    for k, v in pairs(t:get("counts") or {}) do all.counts[k] = (all.counts[k] or 0) + v end
    all.good = all.good + (t:get("good_n") or 0)
    local fr, fg, lg = t:get("first_req_us"), t:get("first_good_us"), t:get("last_good_us")
    if fr and fr > 0 and (not all.first_req or fr < all.first_req) then all.first_req = fr end
    if fg and fg > 0 and (not all.first_good or fg < all.first_good) then all.first_good = fg end
    if lg and lg > 0 and (not all.last_good or lg > all.last_good) then all.last_good = lg end
  end
  return all
end

function report(summary, latency, extra)
  local all = merged()
  local secs = summary.duration / 1e6
  local good_rate, steady_rate, window = 0, 0, 0
  if all.good > 0 and all.first_req and all.last_good then
    window = (all.last_good - all.first_req) / 1e6
    if window > 0 then good_rate = all.good / window end
  end
  if all.good > 1 and all.first_good and all.last_good > all.first_good then
    steady_rate = (all.good - 1) / ((all.last_good - all.first_good) / 1e6)
  end
  local e = summary.errors
  local line = string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.1f good=%d window_s=%.3f good_rate=%.1f steady_rate=%.1f "
      .. "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f err_connect=%d err_read=%d err_write=%d "
      .. "err_timeout=%d non2xx=%d",
    summary.requests, secs, summary.requests / secs, all.good, window, good_rate, steady_rate,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect, e.read, e.write, e.timeout, e.status)
  if extra then line = line .. " " .. extra end
  io.write(line .. "\n")
  local keys = {}
  for k in pairs(all.counts) do table.insert(keys, k) end
  table.sort(keys)
  for _, k in ipairs(keys) do io.write(string.format("COUNT %s %d\n", k, all.counts[k])) end
  return all
end

function done(summary, latency, requests)
  report(summary, latency)
end
