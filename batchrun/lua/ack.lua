-- ack.lua: record the success of one or more jobs and drop them from the worker's processing list.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- ARGV[1]  job key prefix                   batchrun:{ns}:job:
-- ARGV[2]  now, unix seconds
-- ARGV[3]  result retention, milliseconds
-- ARGV[4..] job id, result JSON, job id, result JSON, ...
--
-- Returns the number of jobs recorded. A job no longer in this worker's
-- processing list was reclaimed after the worker was presumed dead: its record
-- is left to whoever runs it now.
local stored = 0
for i = 4, #ARGV, 2 do
    if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
        local job = ARGV[1] .. ARGV[i]
        redis.call('HSET', job, 'state', 'succeeded', 'finished_at', ARGV[2], 'result', ARGV[i + 1])
        redis.call('PEXPIRE', job, ARGV[3])
        stored = stored + 1
    end
end
redis.call('HDEL', KEYS[2], 'job', 'job_started_at')
return stored
