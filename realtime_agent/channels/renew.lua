-- Extend KEYS[1] by ARGV[2] ms only if it still holds ARGV[1]; 0 when lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
