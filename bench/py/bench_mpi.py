"""Benchmark area "mpi", Python side (see bench/mpi.c): mpi4py.futures.MPIPoolExecutor over the ranks of
`mpirun -np 4 python3 -m mpi4py.futures bench/py/bench_mpi.py` (bench/run.sh starts it so: rank 0 runs
this script, the other three serve the executor).

    mpi.map.c1     executor.map over 100,000 items of 8 bytes, chunksize 1; op = one item

The task is a module-level function doing what bench_trivial_task does: 8 bytes in, the input plus one
out (little-endian). Every output is checked. mpi.map.sum is not measured here: its CPU-bound task in
CPython would time the interpreter (about 100 times C's), not the dispatch.
"""
import sys

import benchlib

C1_ITEMS = 100_000
XS = [i * 7919 + 3 for i in range(C1_ITEMS)]
INPUTS = [x.to_bytes(8, "little") for x in XS]


def trivial(b):
    return (int.from_bytes(b, "little") + 1).to_bytes(8, "little")


def main():
    b = benchlib.Bench()
    try:
        from mpi4py import MPI
        from mpi4py.futures import MPIPoolExecutor
    except ImportError:
        print("# mpi.map.*: python skipped (no mpi4py; Debian: apt-get install python3-mpi4py)", flush=True)
        return 0
    if MPI.COMM_WORLD.Get_size() < 2:
        print("# mpi.map.*: python skipped (not under mpirun -np N python3 -m mpi4py.futures)", flush=True)
        return 0
    with MPIPoolExecutor() as ex:
        def c1(n):
            outs = list(ex.map(trivial, INPUTS[:n], chunksize=1))
            for i in range(n):
                if int.from_bytes(outs[i], "little") != XS[i] + 1:
                    raise SystemExit("bench_mpi.py: item %d is wrong" % i)

        b.run("mpi.map.c1", "ns/op", c1, C1_ITEMS, smoke_iters=100, reps=3)
    return 1 if b.failed else 0


if __name__ == "__main__":
    sys.exit(main())
