-- fire.lua: fire one due time of a schedule: record it and queue the job, unless it was fired already.
--
-- Every supervisor on every host computes the same due times and calls this
-- when one comes; the first call for a due time records it in the schedules
-- hash and queues the job, and any later call for the same or an earlier due
-- time changes nothing. That makes each due time fire exactly once with no
-- leader, whichever supervisors are alive.
--
-- KEYS[1]  schedules hash      batchrun:{ns}:schedules
-- KEYS[2]  new job hash        batchrun:{ns}:job:<id>
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  schedule id (<job>#<index>)
-- ARGV[5]  due time, unix seconds
-- ARGV[6]  new job id
-- ARGV[7]  job definition name
-- ARGV[8]  params as JSON text
-- ARGV[9]  queue name
-- ARGV[10] cap on pending wake tokens
-- ARGV[11] unique key of the job, or '' when the job is not unique
-- ARGV[12] concurrency limit of the job, or '' when it has none
--
-- Returns 1 when the job was queued, 2 when the due time was recorded but a
-- unique job with the same params had not ended (nothing queued), or 0 when
-- this due time (or a later one) was fired already.
local ctx = context()
local sid, due, id, job, ukey, limit = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[11], ARGV[12]
local last = tonumber(redis.call('HGET', KEYS[1], sid))
if last and last >= tonumber(due) then
    return 0
end
redis.call('HSET', KEYS[1], sid, due, sid .. ':fired_at', ctx.now)
local holder = ukey ~= '' and unique_holder(ctx, ukey)
if holder then
    redis.call('HSET', KEYS[1], sid .. ':job', holder)
    emit(ctx, holder, 'fired', job, sid .. ' due ' .. due .. '; the same job has not ended, nothing queued')
    return 2
end
local extra = {}
if ukey ~= '' then
    extra = {'unique', ukey}
    redis.call('HSET', ctx.prefix .. 'unique', ukey, id)
end
if limit ~= '' then
    extra[#extra + 1] = 'limit'
    extra[#extra + 1] = limit
end
redis.call('HSET', KEYS[1], sid .. ':job', id)
emit(ctx, id, 'fired', job, sid .. ' due ' .. due)
new_job(ctx, id, job, ARGV[8], ARGV[9], 0, tonumber(ARGV[10]), extra)
return 1
