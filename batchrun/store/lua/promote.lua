-- promote.lua: move delayed jobs and retries whose time has come into their queues.
--
-- Every supervisor calls this every promote_interval; because each call is one
-- atomic step, two supervisors never promote a job twice and a supervisor
-- killed at any moment loses none (a job is either still scheduled or queued).
--
-- KEYS[1]  scheduled set              batchrun:{ns}:scheduled (score: due time)
-- KEYS[2]  the highest-priority queue: ids with no usable record go there, so
--          a worker dead-letters them as malformed, with the reason
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  most jobs to move in this call
-- ARGV[5]  cap on pending wake tokens
--
-- Returns {moved, next due time or false}: the caller calls again at once
-- when it moved a full batch, else sleeps until the next due time.
local ctx = context()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ctx.now, 'LIMIT', 0, tonumber(ARGV[4]))
local moved, gathered = 0, {}
for _, id in ipairs(due) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('SREM', ctx.prefix .. 'retrying', id)
    local rec = record_of(ctx, id)
    if not rec then
        redis.call('RPUSH', KEYS[2], id)
        wake_one(ctx, tonumber(ARGV[5]))
    elseif rec.state == 'scheduled' or rec.state == 'retrying' then
        redis.call('HSET', rec.key, 'state', 'queued')
        redis.call('HDEL', rec.key, 'due_at')
        redis.call('RPUSH', ctx.prefix .. 'queue:' .. rec.queue, id)
        wake_one(ctx, tonumber(ARGV[5]))
        gather(ctx, gathered, id, 'queued', rec.job, rec.state == 'retrying' and 'retry due' or 'due')
        moved = moved + 1
    end
end
emit_gathered(ctx, gathered)
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {moved, next_due[2] or false}
