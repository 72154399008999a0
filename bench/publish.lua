-- publish: a trusted backend sends a short text message to a group, authenticated with the HS256 bearer
-- token in BENCH_BEARER_TOKEN (PublishTrust=jwt). The handler forwards it to the emulator's REST API.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

-- As the Functions host sends it: the handler's request span records it.
wrk.headers["x-azure-functions-invocationid"] = "6f9619ff-8b86-4011-b42d-00000000002a"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_BEARER_TOKEN")
wrk.body = '{"group":"bench","message":"hello from the load benchmark"}'
