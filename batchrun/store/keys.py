"""Every Redis key name batchrun uses is built here, and only here.

All keys of one namespace share the hash tag `{ns}`, so they live in one Redis
Cluster slot and every Lua script stays cluster-safe. Scripts that must derive
a key from a value (a job's hash from its id, a queue from a job's record) use
the prefixes below, which stay inside that hash tag.

    batchrun:{ns}:queue:<name>        list of job ids waiting, oldest at the left
    batchrun:{ns}:job:<id>            hash: one job's definition name, params and state
    batchrun:{ns}:processing:<wid>    list of job ids a worker has taken (its in-flight jobs)
    batchrun:{ns}:worker:<wid>        hash with TTL: a worker's heartbeat
    batchrun:{ns}:workers             set of worker ids that may own a processing list
    batchrun:{ns}:expiries            sorted set of worker ids scored by heartbeat expiry (server ms): the sweep's index
    batchrun:{ns}:dead                list of dead-lettered job ids, oldest at the left
    batchrun:{ns}:wake                list of wake-up tokens that idle workers block on
    batchrun:{ns}:scheduled           sorted set of delayed jobs and retries, scored by due time
    batchrun:{ns}:retrying            set of the scheduled jobs that wait for a retry (what --until-empty waits for)
    batchrun:{ns}:cancelling          set of running jobs someone asked to cancel
    batchrun:{ns}:events              capped stream of job events (and the pub/sub channel of live ones)
    batchrun:{ns}:schedules           hash: per schedule id, the last due time handled (the fence against a
                                      second fire), and `<id>:fired_at` / `<id>:job` of its last fire
    batchrun:{ns}:paused              set of paused queue names, which fetch.lua skips
    batchrun:{ns}:unique              hash: `<job>:<sha256 of canonical params>` -> id of the unique job holding it
    batchrun:{ns}:active:<job>        set of ids of a concurrency-limited job that hold a slot (taken, not ended)
    batchrun:{ns}:waiting:<job>       list of ids of a limited job parked while its slots are full, oldest at the left
    batchrun:{ns}:batch:<bid>         hash: a batch's job, total, times, and counters of pending, failed, dead, cancelled jobs
    batchrun:{ns}:batches             sorted set of batch ids by creation time (for `batchrun batches`)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str

    @property
    def prefix(self) -> str:
        return f"batchrun:{{{self.namespace}}}:"

    @property
    def pattern(self) -> str:
        """A SCAN pattern matching every key of the namespace (the hash tag's braces escaped)."""
        return self.prefix.replace("{", "\\{").replace("}", "\\}") + "*"

    @property
    def job_prefix(self) -> str:
        return self.prefix + "job:"

    @property
    def queue_prefix(self) -> str:
        return self.prefix + "queue:"

    def queue(self, name: str) -> str:
        return self.queue_prefix + name

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def processing(self, worker_id: str) -> str:
        return self.prefix + "processing:" + worker_id

    def worker(self, worker_id: str) -> str:
        return self.prefix + "worker:" + worker_id

    @property
    def workers(self) -> str:
        return self.prefix + "workers"

    @property
    def expiries(self) -> str:
        return self.prefix + "expiries"

    @property
    def dead(self) -> str:
        return self.prefix + "dead"

    @property
    def wake(self) -> str:
        return self.prefix + "wake"

    @property
    def scheduled(self) -> str:
        return self.prefix + "scheduled"

    @property
    def retrying(self) -> str:
        return self.prefix + "retrying"

    @property
    def cancelling(self) -> str:
        return self.prefix + "cancelling"

    @property
    def events(self) -> str:
        """The capped events stream; live events are published on a channel of the same name."""
        return self.prefix + "events"

    @property
    def schedules(self) -> str:
        return self.prefix + "schedules"

    @property
    def paused(self) -> str:
        return self.prefix + "paused"

    @property
    def unique(self) -> str:
        return self.prefix + "unique"

    def active(self, job: str) -> str:
        return self.prefix + "active:" + job

    def waiting(self, job: str) -> str:
        return self.prefix + "waiting:" + job

    @property
    def batch_prefix(self) -> str:
        return self.prefix + "batch:"

    def batch(self, batch_id: str) -> str:
        return self.batch_prefix + batch_id

    @property
    def batches(self) -> str:
        return self.prefix + "batches"
