-- batch_open.lua: create a batch's record, before any of its jobs is queued.
--
-- The record's total is known from the start (every input was validated
-- first), so the batch cannot look ended while its jobs are still being
-- queued. Batch ids are short and random in part; an id already taken is
-- refused here, atomically, and the caller makes another.
--
-- KEYS[1]  batch hash                 batchrun:{ns}:batch:<bid>
-- KEYS[2]  batches index              batchrun:{ns}:batches (score: creation time)
-- ARGV[1]  now, unix seconds
-- ARGV[2]  batch id
-- ARGV[3..] field, value, ... of the record (job, queue, total, pending (= total), ttl_ms, on_complete...)
--
-- Returns 1, or 0 when the id is taken. Up to 10 of the oldest index entries
-- whose record has expired are dropped on the way, so the index stays small.
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'created_at', ARGV[1], 'queued', 0, unpack(ARGV, 3))
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[2])
for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, 9)) do
    if redis.call('EXISTS', prefix .. old) == 0 then
        redis.call('ZREM', KEYS[2], old)
    end
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
