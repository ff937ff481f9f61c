"""Benchmark area "queue", Python side (see bench/queue.c): multiprocessing's Queue and SimpleQueue.

The same lines and the same protocol as bench/queue.c, pinned the same way: the parent coordinates and
pins itself before timing; each producer and consumer is a fork child that pins itself with one call
as its first work, producers on the parent's CPU, consumers on the other one in .cross-cpu. A
repetition of N items: the parent sends N to every child over a Pipe; the producers share the N items
(8-byte bytes objects) and each then puts None (as many producers as consumers); each consumer gets
until None and sends back how many it got; the parent checks that they add up to N. The bw line: the
parent puts items of 1 MiB, then a 1-byte item, which the consumer answers with a 1-byte item on a
second queue.
"""
import multiprocessing as mp

import benchlib

MSG_1M = 1 << 20
ITEM = b"\x01" * 8


def worker(conn, q, producer, index, nprod, cross):
    benchlib.pin_side(cross, 0 if producer else 1)
    put, get = q.put, q.get
    while True:
        total = conn.recv()
        if total < 0:
            break
        if producer:
            n = total // nprod + (index < total % nprod)
            for _ in range(n):
                put(ITEM)
            put(None)
            conn.send(n)
        else:
            got = 0
            while get() is not None:
                got += 1
            conn.send(got)


def items(b, line, cross, nprod, iters, smoke_iters):
    name = b.pair_begin("queue." + line, cross)
    if name is None:
        return
    ctx = mp.get_context("fork")
    q = ctx.SimpleQueue() if line.startswith("simple") else ctx.Queue()
    conns, procs, producer = [], [], []
    for i in range(2 * nprod):
        mine, theirs = ctx.Pipe()
        is_producer = i < nprod
        p = ctx.Process(target=worker, args=(theirs, q, is_producer, i % nprod, nprod, cross))
        p.start()
        conns.append(mine)
        procs.append(p)
        producer.append(is_producer)

    def run(n):
        for c in conns:
            c.send(n)
        put = got = 0
        for c, is_producer in zip(conns, producer):
            if is_producer:
                put += c.recv()
            else:
                got += c.recv()
        if put != n or got != n:
            raise SystemExit("bench_queue.py: %s: %d items put, %d got, not %d" % (name, put, got, n))

    b.run(name, "ns/op", run, iters=iters, smoke_iters=smoke_iters)
    for c in conns:
        c.send(-1)
    for p in procs:
        p.join()
    benchlib.unpin()


def bw_child(q, ack, cross):
    benchlib.pin_side(cross, 1)
    while True:
        item = q.get()
        if len(item) == 0:
            break
        if len(item) == 1:
            ack.put(b"k")


def bw(b, cross, iters):
    name = b.pair_begin("queue.bw.1m", cross)
    if name is None:
        return
    ctx = mp.get_context("fork")
    q, ack = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=bw_child, args=(q, ack, cross))
    p.start()
    payload = b"x" * MSG_1M

    def run(n):
        for _ in range(n):
            q.put(payload)
        q.put(b"e")
        ack.get()

    b.run(name, "GB/s", run, iters=iters, smoke_iters=4, bytes_per_op=float(MSG_1M))
    q.put(b"")
    p.join()
    benchlib.unpin()


def main():
    b = benchlib.Bench()
    benchlib.print_cpu_map()
    for cross in (False, True):
        items(b, "put_get.8b.spsc", cross, 1, 20000, 200)
        items(b, "put_get.8b.mpmc", cross, 2, 20000, 200)
        items(b, "simple.8b", cross, 1, 20000, 200)
        bw(b, cross, 500)


if __name__ == "__main__":
    main()
