-- finish: RUNNING -> SUCCEEDED / FAILED / DISCARDED / CANCELLED, fenced by the token.
-- ARGV[5] id, [6] token, [7] state, [8] field ("r" result or "e" error), [9] value.
-- Returns 1, or 0 when the token is stale (nothing changed).
local id, token = ARGV[5], ARGV[6]
local f = redis.call('HMGET', record_key(id), 'st', 'wk', 'qm', 'tk', 'ttl')
if f[1] ~= 'running' or f[4] ~= token then return 0 end
finish(id, f, ARGV[7], ARGV[8], ARGV[9], server_time(), ttl_of(f[5]))
return 1
