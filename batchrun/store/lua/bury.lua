-- bury.lua: dead-letter a queue entry that has no job record (garbage pushed into a queue).
--
-- The entry is kept verbatim in a new job record, under a fresh id, so it can
-- be inspected; the worker carries on.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  new job hash                     batchrun:{ns}:job:<new id>
-- KEYS[3]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  the entry as it was found
-- ARGV[5]  new job id
-- ARGV[6]  reason
--
-- Returns 1, or 0 when the entry was no longer in the processing list.
local ctx = context()
if redis.call('LREM', KEYS[1], 1, ARGV[4]) == 0 then
    return 0
end
redis.call('HSET', KEYS[2], 'job', '', 'params', '', 'enqueued_at', ctx.now, 'raw', string.sub(ARGV[4], 1, 1024))
bury_record(ctx, ARGV[5], KEYS[2], 'dead', '', ARGV[6], '')
redis.call('HDEL', KEYS[3], 'job', 'job_started_at')
return 1
