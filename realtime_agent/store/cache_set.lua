-- Write a cached session only if it is newer than the cached one, never over a tombstone.
-- KEYS[1] cache key; ARGV[1] version (updated_at, microseconds), ARGV[2] value, ARGV[3] TTL (s)
local current = redis.call('GET', KEYS[1])
if current then
  if current == '!' then return 0 end
  local version = tonumber(string.sub(current, 1, string.find(current, '|', 1, true) - 1))
  if version > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
