-- finish: RUNNING -> SUCCEEDED / FAILED / DISCARDED / CANCELLED, fenced by the token.
-- ARGV[5] id, [6] token, [7] state, [8] field ("r" result or "e" error), [9] value.
-- Returns 1, or 0 when the token is stale (nothing changed).
local id, token = ARGV[5], ARGV[6]
local key = record_key(id)
if not is_current(redis.call('HMGET', key, 'st', 'tk'), token) then return 0 end
local now = server_time()
finish(id, ARGV[7], ARGV[8], ARGV[9], now, record_ttl(key))
return 1
