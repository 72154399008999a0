-- events connect: the upstream call the service makes for every client connection. Each request carries
-- one of the connection ids in BENCH_CONNECT_FIXTURES (lines "<connection id> <ce-signature>", signed
-- by scripts/bench.sh with an independent HMAC-SHA256), so the handler verifies a different signature
-- each time. Requests are formatted once per thread in init(); request() only hands them out in turn.
-- BENCH_CONNECT_PATH (default /api/events) lets the calibration server take the same requests.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local body = '{"claims":{"sub":["alice"],"iat":["1735689600"],"exp":["1735693200"],'
  .. '"aud":["http://127.0.0.1/client/hubs/chat"],"role":["webpubsub.joinLeaveGroup.room1"],'
  .. '"webpubsub.group":["room1"]},"query":{},"headers":{"User-Agent":["bench"]},'
  .. '"subprotocols":["json.webpubsub.azure.v1"],"clientCertificates":[]}'

local prepared = {}
local next_index = 1

function init(args)
  local path = os.getenv("BENCH_CONNECT_FIXTURES")
  local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  local target = os.getenv("BENCH_CONNECT_PATH") or "/api/events"
  local id = 0
  for line in file:lines() do
    local connection_id, signature = line:match("^(%S+)%s+(%S+)$")
    if connection_id then
      id = id + 1
      prepared[#prepared + 1] = wrk.format("POST", target, {
        ["Content-Type"] = "application/json; charset=utf-8",
        ["ce-specversion"] = "1.0",
        ["ce-awpsversion"] = "1.0",
        ["ce-type"] = "azure.webpubsub.sys.connect",
        ["ce-eventName"] = "connect",
        ["ce-id"] = tostring(id),
        ["ce-source"] = "/hubs/chat/client/" .. connection_id,
        ["ce-time"] = "2025-01-01T00:00:00Z",
        ["ce-hub"] = "chat",
        ["ce-connectionId"] = connection_id,
        ["ce-userId"] = "alice",
        ["ce-signature"] = signature,
        ["WebHook-Request-Origin"] = "127.0.0.1",
        -- The Functions host adds an invocation id to every request; the handler's request span records it.
        ["x-azure-functions-invocationid"] = string.format("6f9619ff-8b86-4011-b42d-%012d", id),
      }, body)
    end
  end
  file:close()
  assert(#prepared > 0, "no fixtures in " .. path)
end

function request()
  local r = prepared[next_index]
  next_index = next_index % #prepared + 1
  return r
end
