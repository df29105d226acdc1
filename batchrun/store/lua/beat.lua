-- beat.lua: a supervisor renews the heartbeats of its live workers, unless one has already expired.
--
-- The supervisor vouches for its own children: it knows they are alive
-- without their help (it reaps them), so a job whose C code holds the GIL
-- cannot make its worker look dead. An expired heartbeat means the worker
-- was presumed dead and its jobs may already be running elsewhere, so it is
-- never recreated: the supervisor stops that worker instead.
--
-- KEYS[1..]  heartbeat hashes of the workers   batchrun:{ns}:worker:<wid>
-- ARGV[1]    heartbeat TTL, milliseconds
-- ARGV[2]    now, unix seconds
--
-- Returns, per key in order, 1 when renewed or 0 when the heartbeat was gone.
local alive = {}
for i, key in ipairs(KEYS) do
    if redis.call('PEXPIRE', key, ARGV[1]) == 1 then
        redis.call('HSET', key, 'last_beat', ARGV[2])
        alive[i] = 1
    else
        alive[i] = 0
    end
end
return alive
