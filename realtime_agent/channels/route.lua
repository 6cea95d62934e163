-- Route a session's messages to an inbox (+1) or stop (-1): the count is of the
-- process's interests in the session, so a late -1 and an early +1 commute.
-- KEYS[1] route hash (field: inbox '<process>.<n>'), KEYS[2] seq counter
-- ARGV[1] inbox, ARGV[2] +1 or -1, ARGV[3] the process's id, ARGV[4] prefix of the alive keys
-- Returns the counter (-1 when missing): every event above it reaches the inbox.
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif ARGV[2] == '1' then
  -- Drop the process's earlier inboxes (each connection has a fresh one), and the
  -- inboxes of processes whose alive key expired (killed). One that only stalled
  -- that long has also stopped hearing its probe: it routes again when it wakes.
  for _, inbox in ipairs(redis.call('HKEYS', KEYS[1])) do
    local process = string.sub(inbox, 1, (string.find(inbox, '.', 1, true) or 0) - 1)
    if inbox ~= ARGV[1] and (process == ARGV[3] or redis.call('EXISTS', ARGV[4] .. process) == 0) then
      redis.call('HDEL', KEYS[1], inbox)
    end
  end
end
return tonumber(redis.call('GET', KEYS[2]) or -1)
