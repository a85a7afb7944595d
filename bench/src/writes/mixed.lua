-- bench-writes, scenario `mixed`: the write path's operations in one load, against the service's base URL.
-- usage: wrk [opts] -s mixed.lua http://HOST -- AUTHORIZE_TARGET COOKIE CODE_FORM CLIENT_ID POOL_LIMIT
--   AUTHORIZE_TARGET  path and query of GET /authorize for the prepared client (PKCE S256, resource, scope)
--   COOKIE            the Cookie header of a logged-in browser session whose consent is remembered, so that
--                     /authorize answers 302 with a code at once
--   CODE_FORM         what follows `code=…` in the code exchange (redirect_uri, code_verifier, client_id, resource)
--   CLIENT_ID         the prepared public client, for refresh and revocation
--   POOL_LIMIT        live grants (and unredeemed codes) per thread beyond which an authorization gives way to a
--                     revocation (a code exchange)
-- Each thread cycles through: register, authorize, token (code exchange), refresh ×3, revoke (of a refresh
-- token: the whole grant). A step that lacks its input (no code yet, no refresh token yet) authorizes instead.
-- wrk does not say which request an answer belongs to, so answers are sorted by what they carry: a 302 with a
-- code, a 200 with a refresh token (code exchange or refresh), 201 (registration), 200 without a body (revocation).
-- done() prints `op NAME COUNT` for the requests sent, `answer KIND COUNT` for the answers, and the first
-- unexpected answers of each thread (`unexpected STATUS BODY`). Codes and refresh tokens are used oldest first,
-- so that none waits long enough to expire.

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local cycle = { "register", "authorize", "token", "refresh", "refresh", "refresh", "revoke" }
local step = 0
local authorize_target, cookie, code_form, client_id, limit
local codes, tokens = {}, {}
local json = { ["Content-Type"] = "application/json" }
local register_body = '{"redirect_uris":["http://127.0.0.1:9999/callback"],"client_name":"wrk-bench"}'

local function enc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function form()
  return { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

function init(args)
  authorize_target, cookie, code_form, client_id = args[1], args[2], args[3], args[4]
  limit = tonumber(args[5])
  sent, answers, unexpected = {}, {}, {}
end

local function count(t, k)
  t[k] = (t[k] or 0) + 1
end

function request()
  step = step % #cycle + 1
  local op = cycle[step]
  if op == "token" and #codes == 0 then op = "authorize" end
  if (op == "refresh" or op == "revoke") and #tokens == 0 then op = "authorize" end
  if op == "authorize" and #codes > limit then op = "token" end
  if op == "authorize" and #tokens > limit then op = "revoke" end
  count(sent, op)
  if op == "register" then
    return wrk.format("POST", "/register", json, register_body)
  elseif op == "authorize" then
    return wrk.format("GET", authorize_target, { ["Cookie"] = cookie })
  elseif op == "token" then
    local code = table.remove(codes, 1)
    return wrk.format("POST", "/token", form(), "grant_type=authorization_code&code=" .. code .. code_form)
  elseif op == "refresh" then
    local token = table.remove(tokens, 1)
    return wrk.format("POST", "/token", form(),
      "grant_type=refresh_token&client_id=" .. client_id .. "&refresh_token=" .. enc(token))
  else
    local token = table.remove(tokens, 1)
    return wrk.format("POST", "/revoke", form(),
      "token_type_hint=refresh_token&client_id=" .. client_id .. "&token=" .. enc(token))
  end
end

function response(status, headers, body)
  if status == 302 then
    local location = headers["location"] or headers["Location"] or ""
    -- The code stays percent-encoded as it came: it goes into a form body as is.
    local code = location:match("[?&]code=([^&]+)")
    if code then
      codes[#codes + 1] = code
      count(answers, "302 with a code")
      return
    end
  elseif status == 200 then
    local token = body and body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      tokens[#tokens + 1] = token
      count(answers, "200 with a refresh token")
      return
    elseif body == nil or body == "" then
      count(answers, "200 empty (revocation)")
      return
    end
  elseif status == 201 then
    count(answers, "201 (registration)")
    return
  end
  count(answers, "unexpected " .. status)
  if #unexpected < 3 then unexpected[#unexpected + 1] = status .. " " .. (body or ""):sub(1, 300) end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for op, n in pairs(t:get("sent")) do io.write(string.format("op %s %d\n", op, n)) end
    for kind, n in pairs(t:get("answers")) do io.write(string.format("answer %s %d\n", kind, n)) end
    for _, what in ipairs(t:get("unexpected")) do io.write("unexpected " .. what:gsub("\n", " ") .. "\n") end
  end
end
