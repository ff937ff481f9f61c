"""Benchmark area "sync", Python side (see bench/sync.c): multiprocessing's Lock, Value and Event.

The two-process lines are measured in both placements, pinned as bench/sync.c pins mproc and c-raw:
the parent pins itself before timing, the (fork) child pins itself with one call as its first work.
A repetition is started and collected over a Pipe.
"""
import multiprocessing as mp

import benchlib


def contend(lock, pool, end):
    """Take the lock until the pool's count reaches end; the operations this side did."""
    mine = 0
    while True:
        with lock:
            if pool.value >= end:
                return mine
            pool.value += 1
        mine += 1


def increment(value, n):
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    return n


def pingpong(e1, e2, which, n):
    """n round trips: side 0 sets e1 and waits for e2, side 1 answers."""
    if which == 0:
        for _ in range(n):
            e1.set()
            e2.wait()
            e2.clear()
    else:
        for _ in range(n):
            e1.wait()
            e1.clear()
            e2.set()
    return n


def work(line, objs, which, param):
    if line == "lock.contended":
        return contend(objs[0], objs[1], param)
    if line == "value.incr":
        return increment(objs[0], param)
    return pingpong(objs[0], objs[1], which, param)


def serve(conn, line, objs, cross):
    benchlib.pin_side(cross, 1)
    while True:
        param = conn.recv()
        if param < 0:
            break
        conn.send(work(line, objs, 1, param))


def pair(b, line, cross, iters, smoke_iters, unit):
    name = b.pair_begin("sync." + line, cross)
    if name is None:
        return
    ctx = mp.get_context("fork")
    if line == "lock.contended":
        objs = (ctx.Lock(), ctx.RawValue("q", 0))
    elif line == "value.incr":
        objs = (ctx.Value("q", 0),)
    else:
        objs = (ctx.Event(), ctx.Event())
    mine_end, theirs_end = ctx.Pipe()
    p = ctx.Process(target=serve, args=(theirs_end, line, objs, cross))
    p.start()
    shares = []
    total = [0]

    def run(n):
        param = n
        if line == "lock.contended":
            param = objs[1].value + n
        elif line == "value.incr":
            param = n // 2
        mine_end.send(param)
        mine = work(line, objs, 0, n - n // 2 if line == "value.incr" else param)
        theirs = mine_end.recv()
        shares.append(min(mine, theirs) / max(mine + theirs, 1))
        total[0] += n

    b.run(name, unit, run, iters=iters, smoke_iters=smoke_iters)
    mine_end.send(-1)
    p.join()
    if line == "value.incr" and objs[0].value != total[0]:
        raise SystemExit("bench_sync.py: %s: the value is %d, not %d" % (name, objs[0].value, total[0]))
    if line == "lock.contended" and len(shares) > 1:
        s = sorted(shares[1:])  # the warm-up aside
        print("# %s impl=python: the smaller process's share of the operations: median %.1f%%, min %.1f%%, "
              "max %.1f%% (goal: at least 25%%)" % (name, 100 * s[len(s) // 2], 100 * s[0], 100 * s[-1]), flush=True)
    benchlib.unpin()


def main():
    b = benchlib.Bench()
    benchlib.print_cpu_map()
    lock = mp.get_context("fork").Lock()

    def uncontended(n):
        acquire, release = lock.acquire, lock.release
        for _ in range(n):
            acquire()
            release()

    b.run("sync.lock.uncontended", "ns/op", uncontended, iters=1000000)
    for cross in (False, True):
        pair(b, "lock.contended", cross, 200000, 2000, "ns/op")
        pair(b, "value.incr", cross, 200000, 2000, "ns/op")
        pair(b, "event.pingpong", cross, 5000, 100, "us/op")


if __name__ == "__main__":
    main()
