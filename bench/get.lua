-- GET scenarios (calibration, anonymous negotiate): the path and query come from the URL on wrk's
-- command line; an optional bearer token from BENCH_BEARER_TOKEN (negotiate with NegotiateIdentity=jwt).
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

-- As the Functions host sends it: the handler's request span records it.
wrk.headers["x-azure-functions-invocationid"] = "6f9619ff-8b86-4011-b42d-00000000002a"

local token = os.getenv("BENCH_BEARER_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
