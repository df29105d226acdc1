-- beat.lua: a supervisor renews the heartbeats of its live workers, unless one has already expired.
--
-- The supervisor vouches for its own children: it knows they are alive
-- without their help (it reaps them), so a job whose C code holds the GIL
-- cannot make its worker look dead. An expired heartbeat means the worker
-- was presumed dead and its jobs may already be running elsewhere, so it is
-- never recreated: the supervisor stops that worker instead.
--
-- Each renewal also moves the worker's expiry in the expiries index (by the
-- server's clock, the one that expires the keys), which is how any supervisor
-- finds the next heartbeat to expire without reading every worker.
--
-- KEYS[1]    heartbeat expiries                 batchrun:{ns}:expiries
-- KEYS[2..]  heartbeat hashes of the workers   batchrun:{ns}:worker:<wid>
-- ARGV[1]    heartbeat TTL, milliseconds
-- ARGV[2]    now, unix seconds
-- ARGV[3..]  the workers' ids, in the order of KEYS[2..]
--
-- Returns, per worker in order, 1 when renewed or 0 when the heartbeat was gone.
local t = redis.call('TIME')
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
local alive = {}
for i = 2, #KEYS do
    if redis.call('PEXPIRE', KEYS[i], ARGV[1]) == 1 then
        redis.call('HSET', KEYS[i], 'last_beat', ARGV[2])
        redis.call('ZADD', KEYS[1], expiry, ARGV[i + 1])
        alive[i - 1] = 1
    else
        alive[i - 1] = 0
    end
end
return alive
