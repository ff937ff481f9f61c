"""Benchmark area "process", Python side (see bench/process.c).

Every line has two processes (three with the forkserver), so every one is measured in both
placements, pinned as bench/process.c pins mproc and c-raw: the parent pins itself before timing,
each child pins itself with one call to the CPU number it is given; the forkserver, started by the
first forkserver start, inherits the parent's CPU.
"""
import multiprocessing as mp

import benchlib

MSG_1M = 1 << 20


def pin_child(cpu):
    benchlib.pin_cpu(cpu)


def starter(ctx, cpu):
    def run(iters):
        for _ in range(iters):
            p = ctx.Process(target=pin_child, args=(cpu,))
            p.start()
            p.join()
    return run


def child_start(b, what, cross, iters, ctx=None):
    name = b.pair_begin("process.child." + what, cross)
    if name is None:
        return
    cpu = benchlib.side_cpu(cross, 1)
    b.run(name, "us/op", starter(ctx or mp.get_context(what), cpu), iters=iters, smoke_iters=2)


def echo_child(conn, cross):
    benchlib.pin_side(cross, 1)
    benchlib.conn_echo(conn)


def sink_child(conn, cross, msg):
    benchlib.pin_side(cross, 1)
    buf = bytearray(msg)
    try:
        while True:
            n = conn.recv_bytes_into(buf)
            if n == 0:
                break
            if n == 1:
                conn.send_bytes(b"k")
    except EOFError:
        pass


def pair(b, what, cross, iters, unit, msg=0):
    name = b.pair_begin("process." + what, cross)
    if name is None:
        return
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    bw = what != "pingpong.conn"
    p = ctx.Process(target=sink_child if bw else echo_child, args=(theirs, cross, msg) if bw else (theirs, cross))
    p.start()
    payload = b"x" * msg
    small = bytearray(8)

    pingpong = benchlib.conn_pingpong(mine)

    def bulk(n):
        for _ in range(n):
            mine.send_bytes(payload)
        mine.send_bytes(b"e")
        mine.recv_bytes_into(small)

    b.run(name, unit, bulk if bw else pingpong, iters=iters, smoke_iters=4 if bw else 100, bytes_per_op=float(msg))
    mine.send_bytes(b"")
    p.join()
    mine.close()
    benchlib.unpin()


def main():
    b = benchlib.Bench()
    benchlib.print_cpu_map()
    for cross in (False, True):
        for method, iters in (("fork", 300), ("spawn", 20), ("forkserver", 100)):
            child_start(b, method, cross, iters)
    benchlib.unpin()
    # the starts again from a parent holding 256 MiB, then 1 GiB, of touched memory (as in C)
    held = bytearray()
    for tag, size in (("rss256m", 256 << 20), ("rss1g", 1 << 30)):
        if not any(b.wanted("process.child.%s.%s.%s" % (m, tag, pl)) for m in ("fork", "spawn", "forkserver")
                   for pl in ("same-cpu", "cross-cpu")):
            continue
        size = size // 16 if b.smoke else size
        held += b"\x01" * (size - len(held))
        for cross in (False, True):
            for method, iters in (("fork", 100), ("spawn", 10), ("forkserver", 50)):
                child_start(b, method + "." + tag, cross, iters, mp.get_context(method))
        benchlib.unpin()
    del held
    for cross in (False, True):
        pair(b, "pingpong.conn", cross, 20000, "us/op")
        # the sweep of bench/process.c (about 512 MiB a repetition; 2 GiB from 1 MiB up)
        for size, msg, iters in (("4k", 4096, 131072), ("64k", 64 << 10, 8192), ("1m", MSG_1M, 2000), ("16m", 16 << 20, 128)):
            pair(b, "bw.conn." + size, cross, iters, "GB/s", msg)


if __name__ == "__main__":
    main()
