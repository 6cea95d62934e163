-- Take a session's lock and say, in the same round trip, whether a run holds its lease.
-- KEYS[1] the lock, KEYS[2] the run lease; ARGV[1] the holder's token, ARGV[2] lock TTL (ms)
-- Returns 0 when the lock is held by someone else, 1 when taken (no run), 2 when taken (a run).
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
return 1 + redis.call('EXISTS', KEYS[2])
