-- bury.lua: dead-letter a queue entry that has no job record (garbage pushed into a queue).
--
-- The entry is kept verbatim in a new job record, under a fresh id, so it can
-- be inspected; the worker carries on.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  new job hash                     batchrun:{ns}:job:<new id>
-- KEYS[3]  dead-letter list                 batchrun:{ns}:dead
-- KEYS[4]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- ARGV[1]  the entry as it was found
-- ARGV[2]  new job id
-- ARGV[3]  now, unix seconds
-- ARGV[4]  reason
--
-- Returns 1, or 0 when the entry was no longer in the processing list.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[2], 'job', '', 'params', '', 'state', 'dead',
    'enqueued_at', ARGV[3], 'finished_at', ARGV[3], 'attempts', 0, 'crashes', 0,
    'error', ARGV[4], 'raw', string.sub(ARGV[1], 1, 1024))
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], 'job', 'job_started_at')
return 1
