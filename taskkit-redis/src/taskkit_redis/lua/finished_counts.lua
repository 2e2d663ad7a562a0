-- finished_counts: the group's finished tasks per state over the last ARGV[5] seconds, summed
-- over the buckets the window touches (count_finished in the prelude writes them).
-- Returns {now, start of the first bucket, {state, count, ...}}.
local window = tonumber(ARGV[5])
local now = server_time()
local first, last = math.floor((now - window) / FINISHED_BUCKET), math.floor(now / FINISHED_BUCKET)
local sums, order = {}, {}
for bucket = first, last do
  local flat = redis.call('HGETALL', finished_key(bucket))
  for i = 1, #flat, 2 do
    local state = flat[i]
    if not sums[state] then
      sums[state] = 0
      order[#order + 1] = state
    end
    sums[state] = sums[state] + tonumber(flat[i + 1])
  end
end
local counts = {}
for _, state in ipairs(order) do
  counts[#counts + 1] = state
  counts[#counts + 1] = string.format('%d', sums[state])
end
return {fmt(now), fmt(first * FINISHED_BUCKET), counts}
