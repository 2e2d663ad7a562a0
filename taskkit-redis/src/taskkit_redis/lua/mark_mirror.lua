-- mark_mirror (cluster mode): raise the global copy of a schedule mark, never lower it.
-- KEYS[1] marks hash, ARGV[1] field, ARGV[2] point.
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if (not seen) or tonumber(seen) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
