"""Benchmark area "manager", Python side (see bench/manager.c).

manager.listener.pingpong: a 1-byte round trip over multiprocessing.connection's Listener/Client on a
Unix socket, with an authkey (the handshake once, before timing). manager.dict.setget: d[key] = value
and d[key] on a Manager().dict() whose server is pinned as side 1. Both processes pinned as
bench/manager.c pins mproc and c-raw: the parent before timing, the child as its first work.
"""
import multiprocessing as mp
from multiprocessing.connection import Client, Listener
from multiprocessing.managers import SyncManager

import benchlib

KEY = b"bench authkey"


def echo_client(address, cross):
    benchlib.pin_side(cross, 1)
    conn = Client(address, authkey=KEY)
    benchlib.conn_echo(conn)
    conn.close()


def pingpong(b, cross, iters):
    name = b.pair_begin("manager.listener.pingpong", cross)
    if name is None:
        return
    listener = Listener(family="AF_UNIX", authkey=KEY)
    p = mp.get_context("fork").Process(target=echo_client, args=(listener.address, cross))
    p.start()
    conn = listener.accept()
    b.run(name, "us/op", benchlib.conn_pingpong(conn), iters=iters, smoke_iters=100)
    conn.send_bytes(b"")
    p.join()
    conn.close()
    listener.close()
    benchlib.unpin()


VALUE = b"0123456789abcdef"


def setget(b, cross, iters):
    """manager.dict.setget: d["key"] = value and d["key"] on a Manager().dict(), its server pinned as
    side 1 (its first work, through the manager's initializer)."""
    name = b.pair_begin("manager.dict.setget", cross)
    if name is None:
        return
    m = SyncManager(ctx=mp.get_context("fork"))
    m.start(initializer=benchlib.pin_side, initargs=(cross, 1))
    d = m.dict()

    def run(n):
        for _ in range(n):
            d["key"] = VALUE
            d["key"]

    b.run(name, "us/op", run, iters=iters, smoke_iters=100)
    m.shutdown()
    benchlib.unpin()


def main():
    b = benchlib.Bench()
    benchlib.print_cpu_map()
    for cross in (False, True):
        pingpong(b, cross, 20000)
    for cross in (False, True):
        setget(b, cross, 20000)


if __name__ == "__main__":
    main()
