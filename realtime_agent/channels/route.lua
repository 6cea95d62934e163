-- Route a session's messages to an inbox (+1) or stop (-1): the count is of the
-- process's interests in the session, so a late -1 and an early +1 commute.
-- KEYS[1] route hash (field: inbox '<process>.<n>', n growing with each connection)
-- KEYS[2] seq counter
-- ARGV[1] inbox, ARGV[2] +1 or -1, ARGV[3] the process's id, ARGV[4] prefix of the alive keys
-- Returns the counter (-1 when missing): every event above it reaches the inbox; or
-- -2 when a later inbox of the process is routed (this +1 came late: it is undone).
local function parts(inbox)
  local dot = string.find(inbox, '.', 1, true) or 0
  return string.sub(inbox, 1, dot - 1), tonumber(string.sub(inbox, dot + 1)) or 0
end
if ARGV[2] == '1' then
  local _, mine = parts(ARGV[1])
  for _, inbox in ipairs(redis.call('HKEYS', KEYS[1])) do
    local process, n = parts(inbox)
    if process == ARGV[3] and n > mine then return -2 end
    -- The process's earlier inboxes are dead; so are those of processes whose alive
    -- key expired (killed). One that only stalled that long has also stopped hearing
    -- its probe: it routes again on a fresh inbox when it wakes.
    if inbox ~= ARGV[1] and (process == ARGV[3] or redis.call('EXISTS', ARGV[4] .. process) == 0) then
      redis.call('HDEL', KEYS[1], inbox)
    end
  end
end
if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return tonumber(redis.call('GET', KEYS[2]) or -1)
