"""Benchmark area "subprocess", Python side (see bench/subprocess.c)."""
import subprocess

import benchlib


def spawn_true(iters):
    for _ in range(iters):
        subprocess.run(["/bin/true"])


def main():
    b = benchlib.Bench()
    b.run("subprocess.spawn.true", "us/op", spawn_true, iters=300, smoke_iters=3)

    helper = benchlib.sibling("mproc_helper")
    each = (1 << 20) if b.smoke else (200 << 20)

    def capture(iters):
        for _ in range(iters):
            r = subprocess.run([helper, "out", str(each), "err", str(each)], capture_output=True)
            assert len(r.stdout) == each and len(r.stderr) == each

    b.run("subprocess.capture.both200m", "MB/s", capture, iters=1, smoke_iters=1, reps=5, bytes_per_op=2.0 * each)

    if b.wanted("subprocess.spawn.true.rss1g"):
        big = bytearray(b"\x01") * ((64 << 20) if b.smoke else (1 << 30))  # touched, not calloc'ed
        b.run("subprocess.spawn.true.rss1g", "us/op", spawn_true, iters=300, smoke_iters=3)
        del big


if __name__ == "__main__":
    main()
