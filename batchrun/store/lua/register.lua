-- register.lua: announce a worker before it takes any job.
--
-- The workers set is how any supervisor finds processing lists whose owner's
-- heartbeat has expired; a worker is added to it in the same step as its
-- heartbeat is created, so no processing list can exist unknown.
--
-- KEYS[1]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- KEYS[2]  workers set                      batchrun:{ns}:workers
-- KEYS[3]  heartbeat expiries               batchrun:{ns}:expiries
-- ARGV[1]  worker id
-- ARGV[2]  heartbeat TTL, milliseconds
-- ARGV[3..] field, value, field, value... (host, pid, supervisor, started_at...)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]), ARGV[1])
return 1
