-- Appended by bench/run.py after the lines that set wrk.method, wrk.body and wrk.headers.
-- wrk's own percentiles are corrected for coordinated omission (it adds synthetic samples for every stall),
-- so they are not per-request latencies. These hooks time each request on CLOCK_MONOTONIC instead. A thread
-- has only one timer, so run.py starts one thread per connection.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

local prepared, started = nil, 0
hist, statuses, sample = {}, {}, ""

function init(args) prepared = wrk.format() end

function request()
  started = now_us()
  return prepared
end

function response(status, headers, body)
  local us = now_us() - started
  -- 1 us resolution below 1 ms, then 10 us, then 100 us: about 1% precision, and a small table
  if us >= 10000 then us = math.floor(us / 100) * 100
  elseif us >= 1000 then us = math.floor(us / 10) * 10
  else us = math.floor(us) end
  hist[us] = (hist[us] or 0) + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 400 and sample == "" then sample = status .. ": " .. string.sub(body or "", 1, 400) end
end

local function json_string(text)
  return '"' .. (string.gsub(text, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)) .. '"'
end

function done(summary, latency, requests)
  local merged, codes, samples, n, sum, max = {}, {}, {}, 0, 0, 0
  for _, thread in ipairs(threads) do
    for us, count in pairs(thread:get("hist") or {}) do
      merged[us] = (merged[us] or 0) + count
      n, sum = n + count, sum + us * count
      if us > max then max = us end
    end
    for status, count in pairs(thread:get("statuses") or {}) do codes[status] = (codes[status] or 0) + count end
    local text = thread:get("sample")
    if text and text ~= "" then samples[#samples + 1] = json_string(text) end
  end
  local keys = {}
  for us in pairs(merged) do keys[#keys + 1] = us end
  table.sort(keys)
  local function percentile(p)
    local rank, seen = math.max(1, math.ceil(p / 100 * n)), 0
    for _, us in ipairs(keys) do
      seen = seen + merged[us]
      if seen >= rank then return us end
    end
    return 0
  end
  local status_parts = {}
  for status, count in pairs(codes) do status_parts[#status_parts + 1] = string.format('"%d":%d', status, count) end
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"timed":%d,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"mean_us":%.1f,' ..
    '"wrk_co_p50_us":%.0f,"wrk_co_p99_us":%.0f,"non2xx":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,' ..
    '"timeout":%.0f,"statuses":{%s},"samples":[%s]}\n',
    summary.requests, summary.duration, summary.bytes, n, percentile(50), percentile(90), percentile(99), max,
    n > 0 and sum / n or 0, latency:percentile(50), latency:percentile(99), e.status, e.connect, e.read,
    e.write, e.timeout, table.concat(status_parts, ","), table.concat(samples, ",")))
end
