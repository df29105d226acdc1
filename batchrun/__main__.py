"""`python -m batchrun` and the `batchrun` command.

The cyclic garbage collector is paused while the command's modules import: redis-py, asyncio, yaml and
batchrun make tens of thousands of objects that live as long as the process, and the collector would
scan them some 80 times, about 10 ms of every command's start-up (a tenth of `supervise`'s way to its
first job). They are then frozen (gc.freeze), so that later collections skip them and forked workers
do not copy the memory pages a collection would write to; the collector runs as usual from there on."""
import gc


def run() -> int:
    gc.disable()
    try:
        from batchrun.store.deferred import defer
        defer("importlib.metadata")  # only in processes the command owns: see store/deferred.py
        defer("redis.asyncio")
        from batchrun.surfaces.cli import main
    finally:
        gc.freeze()
        gc.enable()
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
