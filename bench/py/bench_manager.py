"""Benchmark area "manager", Python side (see bench/manager.c).

manager.listener.pingpong: a 1-byte round trip over multiprocessing.connection's Listener/Client on a
Unix socket, with an authkey (the handshake once, before timing). Both processes pinned as
bench/manager.c pins mproc and c-raw: the parent before timing, the child as its first work.
"""
import multiprocessing as mp
from multiprocessing.connection import Client, Listener

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


def main():
    b = benchlib.Bench()
    benchlib.print_cpu_map()
    for cross in (False, True):
        pingpong(b, cross, 20000)


if __name__ == "__main__":
    main()
