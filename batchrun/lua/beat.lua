-- beat.lua: refresh a worker's heartbeat, unless it has already expired.
--
-- An expired heartbeat means the worker was presumed dead and its jobs may
-- already be running elsewhere, so the heartbeat is never recreated: the
-- worker is told to stop instead.
--
-- KEYS[1]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- ARGV[1]  heartbeat TTL, milliseconds
-- ARGV[2]  now, unix seconds
--
-- Returns 1, or 0 when the heartbeat was gone.
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[1], 'last_beat', ARGV[2])
return 1
