-- ack.lua: record a job's success and drop it from the worker's processing list.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  job hash                         batchrun:{ns}:job:<id>
-- KEYS[3]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- ARGV[1]  job id
-- ARGV[2]  now, unix seconds
-- ARGV[3]  result as JSON text
-- ARGV[4]  result retention, milliseconds
--
-- Returns 1, or 0 when the job was no longer in this worker's processing list
-- (it was reclaimed after this worker was presumed dead): the record is then
-- left to whoever runs the job now.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[2], 'state', 'succeeded', 'finished_at', ARGV[2], 'result', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('HDEL', KEYS[3], 'job', 'job_started_at')
return 1
