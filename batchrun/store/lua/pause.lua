-- pause.lua: pause or resume queues.
--
-- fetch.lua skips the queues in the paused set; jobs already running finish,
-- and submits are still accepted. Resuming wakes idle workers (they block on
-- the wake list), one token per waiting job up to the cap.
--
-- KEYS[1]  paused set          batchrun:{ns}:paused
-- KEYS[2]  wake list           batchrun:{ns}:wake
-- KEYS[3..] the queue lists named in ARGV[3..], in the same order
-- ARGV[1]  'pause' or 'resume'
-- ARGV[2]  cap on pending wake tokens
-- ARGV[3..] queue names
--
-- Returns how many queues changed.
local changed = 0
local waiting = 0
for i = 3, #ARGV do
    if ARGV[1] == 'pause' then
        changed = changed + redis.call('SADD', KEYS[1], ARGV[i])
    else
        changed = changed + redis.call('SREM', KEYS[1], ARGV[i])
        waiting = waiting + redis.call('LLEN', KEYS[i])
    end
end
local tokens = math.min(waiting, tonumber(ARGV[2]) - redis.call('LLEN', KEYS[2]))
for _ = 1, tokens do
    redis.call('LPUSH', KEYS[2], '1')
end
return changed
