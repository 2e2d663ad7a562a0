-- put_scheduled: fire one schedule point: compare-and-set the entry's mark and store the task.
-- ARGV[5] mark field, ARGV[6] point, ARGV[7] mirror hash key or "" (cluster mode), then the
-- task's id, header and data (see create_record). Returns {fired, record_exists}.
local field, point, mirror = ARGV[5], ARGV[6], ARGV[7]
local id = ARGV[8]
local mark = redis.call('HGET', MARKS, field)
if mark and tonumber(mark) >= tonumber(point) then
  return {0, redis.call('EXISTS', record_key(id))}
end
if not id_is_free(id) then return {0, redis.call('EXISTS', record_key(id))} end
redis.call('HSET', MARKS, field, point)
if mirror ~= '' then
  local seen = redis.call('HGET', mirror, field)
  if (not seen) or tonumber(seen) < tonumber(point) then redis.call('HSET', mirror, field, point) end
end
create_record(id, ARGV[9], ARGV[10])
wake()
return {1, 1}
