-- fail.lua: end a job that cannot succeed: record why and move it to the dead-letter list.
--
-- State 'failed' means its handler ran and failed (error and traceback kept);
-- 'dead' means it could not be run at all (unknown job, invalid params).
-- Either way it waits in the dead-letter list until someone requeues or purges it.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  job hash                         batchrun:{ns}:job:<id>
-- KEYS[3]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- KEYS[4]  dead-letter list                 batchrun:{ns}:dead
-- ARGV[1]  job id
-- ARGV[2]  now, unix seconds
-- ARGV[3]  final state: 'failed' or 'dead'
-- ARGV[4]  error message
-- ARGV[5]  traceback (may be empty)
--
-- Returns 1, or 0 when the job was no longer in this worker's processing list.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'finished_at', ARGV[2],
    'error', ARGV[4], 'traceback', ARGV[5])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[3], 'job', 'job_started_at')
return 1
