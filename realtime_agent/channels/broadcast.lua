-- Publish one message to the inbox of every process routed to a session.
-- KEYS[1] route hash (field: inbox); ARGV[1] prefix of the inbox channels, ARGV[2] message
for _, inbox in ipairs(redis.call('HKEYS', KEYS[1])) do
  redis.call('PUBLISH', ARGV[1] .. inbox, ARGV[2])
end
return 0
