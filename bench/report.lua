-- Shared by every scenario of scripts/bench.sh: at the end of a wrk run, one machine-readable line
--   RESULT requests=<n> seconds=<s> rps=<r> p50_ms=<a> p99_ms=<b> non2xx=<c> socket_errors=<d>
-- (wrk counts any status >= 400 in errors.status; the script treats a non-zero count as a failed run).
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
