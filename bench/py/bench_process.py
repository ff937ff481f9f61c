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


def child_start(b, method, cross, iters):
    name = b.pair_begin("process.child." + method, cross)
    if name is None:
        return
    cpu = benchlib.side_cpu(cross, 1)
    b.run(name, "us/op", starter(mp.get_context(method), cpu), iters=iters, smoke_iters=2)


def echo_child(conn, cross):
    benchlib.pin_side(cross, 1)
    benchlib.conn_echo(conn)


def sink_child(conn, cross):
    benchlib.pin_side(cross, 1)
    buf = bytearray(MSG_1M)
    try:
        while True:
            n = conn.recv_bytes_into(buf)
            if n == 0:
                break
            if n == 1:
                conn.send_bytes(b"k")
    except EOFError:
        pass


def pair(b, what, cross, iters, unit, bytes_per_op=0.0):
    name = b.pair_begin("process." + what, cross)
    if name is None:
        return
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    bw = what != "pingpong.conn"
    p = ctx.Process(target=sink_child if bw else echo_child, args=(theirs, cross))
    p.start()
    payload = bytes(MSG_1M)
    small = bytearray(8)

    pingpong = benchlib.conn_pingpong(mine)

    def bulk(n):
        for _ in range(n):
            mine.send_bytes(payload)
        mine.send_bytes(b"e")
        mine.recv_bytes_into(small)

    b.run(name, unit, bulk if bw else pingpong, iters=iters, smoke_iters=4 if bw else 100, bytes_per_op=bytes_per_op)
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
    for cross in (False, True):
        pair(b, "pingpong.conn", cross, 20000, "us/op")
        pair(b, "bw.conn.1m", cross, 2000, "GB/s", float(MSG_1M))


if __name__ == "__main__":
    main()
