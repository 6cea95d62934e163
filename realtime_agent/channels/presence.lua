-- Count a socket joining (+1) or leaving (-1) on this process; publish the total.
-- KEYS[1] presence hash (field: process id), KEYS[2] pub/sub channel
-- ARGV[1] process id, ARGV[2] delta, ARGV[3] TTL (s)
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local total = 0
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(n) end
redis.call('PUBLISH', KEYS[2], '0|{"type":"presence","viewers":' .. total .. '}')
return total
