"""Benchmark area "pool", Python side (see bench/pool.c): multiprocessing.Pool with 2 workers.

The same lines, inputs and placement as bench/pool.c: the parent pins itself before timing, every worker
pins itself in the pool's initializer (to the parent's CPU in .same-cpu, to the other one in .cross-cpu).
The task is a module-level function doing what bench_trivial_task does: 8 bytes in, the input plus one
out (little-endian). The map and apply_async lines use the fork context and one pool created before
timing; create_join creates a pool (fork or spawn), maps 2 items with chunksize 1, closes and joins it.
The array lines map over the inputs as ints (CPython has no array path).
Every output is checked.
"""
import multiprocessing as mp

import benchlib

WORKERS = 2
MAP_ITEMS = 100_000
APPLY_TASKS = 20_000
XS = [i * 7919 + 3 for i in range(MAP_ITEMS)]
INPUTS = [x.to_bytes(8, "little") for x in XS]


def task(b):
    return (int.from_bytes(b, "little") + 1).to_bytes(8, "little")


def int_task(x):
    return x + 1


def check(outs, n):
    for i in range(n):
        if int.from_bytes(outs[i], "little") != XS[i] + 1:
            raise SystemExit("bench_pool.py: item %d is wrong" % i)


def bytes_line(b, line, cross, chunksize, iters, apply):
    name = b.pair_begin("pool." + line, cross)
    if name is None:
        return
    cpu = benchlib.side_cpu(cross, 1)
    ctx = mp.get_context("fork")
    pool = ctx.Pool(WORKERS, initializer=benchlib.pin_cpu, initargs=(cpu,))

    def run(n):
        if apply:
            rs = [pool.apply_async(task, (INPUTS[i],)) for i in range(n)]
            outs = [r.get() for r in rs]
        else:
            outs = pool.map(task, INPUTS[:n], chunksize)
        check(outs, n)

    b.run(name, "ns/op", run, iters=iters, smoke_iters=100, reps=5)
    pool.close()
    pool.join()
    benchlib.unpin()


def array_line(b, line, cross, chunksize):
    """CPython has no array path: Pool.map over the records as ints, its nearest."""
    name = b.pair_begin("pool." + line, cross)
    if name is None:
        return
    cpu = benchlib.side_cpu(cross, 1)
    pool = mp.get_context("fork").Pool(WORKERS, initializer=benchlib.pin_cpu, initargs=(cpu,))

    def run(n):
        outs = pool.map(int_task, XS[:n], chunksize)
        if any(outs[i] != XS[i] + 1 for i in range(n)):
            raise SystemExit("bench_pool.py: an array item is wrong")

    b.run(name, "ns/op", run, iters=MAP_ITEMS, smoke_iters=100, reps=5)
    pool.close()
    pool.join()
    benchlib.unpin()


def create_join(b, method, cross, iters):
    name = b.pair_begin("pool.create_join." + method, cross)
    if name is None:
        return
    cpu = benchlib.side_cpu(cross, 1)
    ctx = mp.get_context(method)

    def run(n):
        for _ in range(n):
            pool = ctx.Pool(WORKERS, initializer=benchlib.pin_cpu, initargs=(cpu,))
            check(pool.map(task, INPUTS[:WORKERS], 1), WORKERS)
            pool.close()
            pool.join()

    b.run(name, "us/op", run, iters=iters, smoke_iters=1)
    benchlib.unpin()


def main():
    b = benchlib.Bench()
    benchlib.print_cpu_map()
    for cross in (False, True):
        bytes_line(b, "map.c1.bytes", cross, 1, MAP_ITEMS, False)
        bytes_line(b, "map.default.bytes", cross, None, MAP_ITEMS, False)
        bytes_line(b, "apply_async", cross, 1, APPLY_TASKS, True)
        create_join(b, "fork", cross, 20)
        create_join(b, "spawn", cross, 5)
        array_line(b, "map.c1.array", cross, 1)
        array_line(b, "map.default.array", cross, None)


if __name__ == "__main__":
    main()
