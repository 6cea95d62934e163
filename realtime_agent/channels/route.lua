-- Route a session's messages to an inbox (+1) or stop (-1): the count is of the
-- process's interests in the session, so a late -1 and an early +1 commute.
-- KEYS[1] route hash (field: inbox), KEYS[2] seq counter
-- ARGV[1] inbox, ARGV[2] +1 or -1, ARGV[3] '' or an older inbox of the same process to drop
-- Returns the counter (-1 when missing): every event above it reaches the inbox.
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[1], ARGV[3]) end
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return tonumber(redis.call('GET', KEYS[2]) or -1)
