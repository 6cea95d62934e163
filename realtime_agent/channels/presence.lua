-- Count a socket joining (+1) or leaving (-1) on this process; tell every
-- process routed to the session the total.
-- KEYS[1] presence hash (field: process id), KEYS[2] route hash (field: inbox)
-- ARGV[1] process id, ARGV[2] delta, ARGV[3] TTL (s), ARGV[4] prefix of the alive keys
-- ARGV[5] prefix of the inbox channels, ARGV[6] the session's part of a message
-- Counts of processes whose alive key expired (killed) are not summed.
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if mine <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local total = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  -- A stalled process may come back: skip its count, never delete it (the hash has a TTL).
  if entries[i] == ARGV[1] or redis.call('EXISTS', ARGV[4] .. entries[i]) == 1 then
    total = total + tonumber(entries[i + 1])
  end
end
local message = ARGV[6] .. '0|{"type":"presence","viewers":' .. total .. '}'
for _, inbox in ipairs(redis.call('HKEYS', KEYS[2])) do
  redis.call('PUBLISH', ARGV[5] .. inbox, message)
end
return total
