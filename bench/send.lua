-- durable send (#15): a member posts to one conversation, `POST /api/conversations/{id}/messages`, identified
-- anonymously by `X-User-Id` (NegotiateIdentity=anonymous). Every request carries a client id unique across
-- threads and runs ("<run>-<thread>-<n>"), so idempotency never answers a stored message instead of writing
-- a new one. The conversation id comes from BENCH_CONVERSATION, the member from BENCH_MEMBER, the run tag
-- from BENCH_RUN (scripts/bench.sh sets all three).
dofile(os.getenv("BENCH_DIR") .. "/report.lua")

local conversation = os.getenv("BENCH_CONVERSATION")
local member = os.getenv("BENCH_MEMBER") or "alice"
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tag", run .. "-" .. threads)
end

local counter = 0
local path = "/api/conversations/" .. conversation .. "/messages"
local headers = {
  ["Content-Type"] = "application/json",
  ["X-User-Id"] = member,
  ["x-azure-functions-invocationid"] = "6f9619ff-8b86-4011-b42d-00000000002a",
}

function request()
  counter = counter + 1
  local body = string.format('{"id":"%s-%d","body":{"text":"hello, a typical short chat message"}}', tag, counter)
  return wrk.format("POST", path, headers, body)
end

