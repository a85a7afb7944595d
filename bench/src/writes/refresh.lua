-- bench-writes, scenario `refresh`: POST /token grant_type=refresh_token, every token used once.
-- usage: wrk [opts] -s refresh.lua http://HOST/token -- POOL_FILE CLIENT_ID THREADS
-- The pool (one refresh token per grant) is dealt out to the threads; a request takes the oldest token of its
-- thread's pool, and each 200 puts the rotated token at the back, so every grant advances one rotation at a time.
-- The pool must hold at least one token per connection, or a request finds it empty and sends a token that
-- cannot work (counted as a non-2xx answer).

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

local pool, head, tail = {}, 1, 1
local client_id
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }

local function enc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  client_id = args[2]
  local n, i = tonumber(args[3]), 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if i % n == tid then
        pool[tail] = line
        tail = tail + 1
      end
      i = i + 1
    end
  end
end

function request()
  local token = "pool-empty"
  if head < tail then
    token = pool[head]
    pool[head] = nil
    head = head + 1
  end
  return wrk.format("POST", nil, form,
    "grant_type=refresh_token&client_id=" .. client_id .. "&refresh_token=" .. enc(token))
end

function response(status, headers, body)
  if status == 200 then
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      pool[tail] = token
      tail = tail + 1
    end
  end
end
