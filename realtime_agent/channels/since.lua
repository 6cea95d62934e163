-- The counter and, when ARGV[1] is a seq below it, every history entry after it.
-- KEYS[1] seq counter, KEYS[2] history list; ARGV[1] '' or the client's after
-- Returns {last or -1, entries...}; the caller checks the entries are contiguous.
local last = redis.call('GET', KEYS[1])
if not last then return {-1} end
last = tonumber(last)
local out = {last}
if ARGV[1] ~= '' then
  local wanted = last - tonumber(ARGV[1])
  if wanted > 0 then
    for _, entry in ipairs(redis.call('LRANGE', KEYS[2], -wanted, -1)) do
      out[#out + 1] = entry
    end
  end
end
return out
