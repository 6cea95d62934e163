-- Emit one session event: take the next seq, keep it in history, publish it to
-- the inbox of every other process routed to the session (the emitting process
-- hands it to its own sockets itself).
-- KEYS[1] seq counter, KEYS[2] history list, KEYS[3] route hash (field: inbox)
-- ARGV[1] the encoded frame without its closing brace
-- ARGV[2] the durable seq mark: no seq above it may be used (returns -1)
-- ARGV[3] '' or the seq to continue after when the counter is missing (else returns -2)
-- ARGV[4] min events kept, ARGV[5] max events kept, ARGV[6] window (ms) kept
-- ARGV[7] history TTL (s), ARGV[8] counter TTL (s)
-- ARGV[9] prefix of the inbox channels, ARGV[10] the emitter's inbox (skipped)
-- ARGV[11] the session's part of a message ('<bytes of the id>:<id>')
local current = redis.call('GET', KEYS[1])
if not current then
  if ARGV[3] == '' then return -2 end
  current = ARGV[3]
end
local seq = tonumber(current) + 1
if seq > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], seq, 'EX', ARGV[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local data = ARGV[1] .. ',"seq":' .. seq .. '}'
local length = redis.call('RPUSH', KEYS[2], now .. '|' .. data)
local keep_min, keep_max = tonumber(ARGV[4]), tonumber(ARGV[5])
if length > keep_max then
  redis.call('LTRIM', KEYS[2], length - keep_max, -1)
  length = keep_max
end
local horizon = now - tonumber(ARGV[6])
while length > keep_min do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if tonumber(string.sub(head, 1, string.find(head, '|', 1, true) - 1)) >= horizon then break end
  redis.call('LPOP', KEYS[2])
  length = length - 1
end
redis.call('EXPIRE', KEYS[2], ARGV[7])
local message
for _, inbox in ipairs(redis.call('HKEYS', KEYS[3])) do
  if inbox ~= ARGV[10] then
    message = message or (ARGV[11] .. seq .. '|' .. data)
    redis.call('PUBLISH', ARGV[9] .. inbox, message)
  end
end
return seq
