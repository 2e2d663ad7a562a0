-- release_worker: expire now every lease a (dead) worker holds in this group; deliveries stay
-- counted. ARGV[5] worker id. Returns how many leases it held.
local worker = ARGV[5]
local now = fmt(server_time())
local held = 0
for _, id in ipairs(redis.call('SMEMBERS', worker_key(worker))) do
  local key = record_key(id)
  local f = redis.call('HMGET', key, 'st', 'wk', 'le')
  if f[1] == 'running' and f[2] == worker then
    held = held + 1
    if (tonumber(f[3]) or 0) > tonumber(now) then
      redis.call('HSET', key, 'le', now)
      redis.call('ZADD', LEASES, now, id)
    end
  end
end
-- The set stays: its tasks are still held (by expired leases) until they are reclaimed or
-- finish, which removes them from it; a second release counts them again, as the model does.
if held > 0 then wake() end
return held
