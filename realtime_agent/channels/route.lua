-- Route a session's messages to an inbox (+1) or stop (-1): the count is of the
-- process's interests in the session, so a late -1 and an early +1 commute.
-- KEYS[1] route hash (field: inbox '<process>.<n>'), KEYS[2] seq counter
-- ARGV[1] inbox, ARGV[2] +1 or -1, ARGV[3] '' or an older inbox of the same process to drop
-- ARGV[4] prefix of the alive keys
-- Returns the counter (-1 when missing): every event above it reaches the inbox.
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[1], ARGV[3]) end
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif ARGV[2] == '1' then
  -- Drop the inboxes of processes whose alive key expired (killed). One that only
  -- stalled that long has also stopped hearing its probe: it resets its subscriber
  -- and routes its sessions to a fresh inbox.
  for _, inbox in ipairs(redis.call('HKEYS', KEYS[1])) do
    local process = string.sub(inbox, 1, (string.find(inbox, '.', 1, true) or 0) - 1)
    if inbox ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. process) == 0 then
      redis.call('HDEL', KEYS[1], inbox)
    end
  end
end
return tonumber(redis.call('GET', KEYS[2]) or -1)
