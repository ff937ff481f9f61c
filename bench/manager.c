/* Benchmark area "manager": the server process way of sharing state, mproc beside the raw POSIX calls and
 * CPython's multiprocessing (bench/py/bench_manager.py). So far its transport:
 *
 *   manager.listener.pingpong.<placement>  1-byte round trip over a Listener/Client connection on a
 *                                          Unix socket (authkey handshake once, before timing)
 *                                          | c-raw: a Unix stream socket, listen/connect, 1-byte write
 *                                            and read
 *
 * mproc's messages carry CPython's 4-byte length before the byte (what lets a C and a Python program talk
 * over it), sent in one write and received in one read, so a round trip is the same four system calls
 * as the raw one's. Two processes: every implementation is pinned the same way in both placements
 * (bench.h): the parent pins itself before timing, the child pins itself as its first work.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "mproc.h"

static const char kKey[] = "bench authkey";

typedef struct pair_ctx {
  bench_placement placement;
  mproc_connection *mine; /* mproc: the accepted connection */
  int fd;                 /* c-raw: the accepted socket */
  const char *address;    /* where the child connects */
} pair_ctx;

/* ---- mproc: a Listener in the parent, a Client in a fork child that echoes ---------------------- */

static int echo_client(const mproc_args *a) {
  const pair_ctx *c = (const pair_ctx *)a->data; /* the parent's, copied by the fork */
  bench_pin_side(c->placement, 1);
  mproc_connection *conn;
  if (mproc_client(&conn, &(mproc_client_opts){.address = c->address, .authkey = kKey, .authkey_size = sizeof kKey},
                   20000) != 0)
    return 1;
  bench_conn_echo(conn);
  mproc_connection_destroy(conn);
  return 0;
}

static void pingpong_mproc(void *vctx, int64_t iters) { bench_conn_pingpong(((pair_ctx *)vctx)->mine, iters); }

static int run_mproc(bench_spec spec, pair_ctx *c) {
  mproc_listener *l;
  if (mproc_listener_create(&l, &(mproc_listener_opts){.authkey = kKey, .authkey_size = sizeof kKey}) != 0) {
    fprintf(stderr, "bench_manager: %s\n", mproc_last_error());
    return 1;
  }
  c->address = mproc_listener_address(l);
  mproc_process *p;
  if (mproc_process_create(
          &p,
          &(mproc_process_opts){
              .target = echo_client, .arg = c, .arg_size = sizeof *c, .start_method = MPROC_START_FORK}) != 0 ||
      mproc_process_start(p) != 0 || mproc_listener_accept(l, 20000, &c->mine) != 0) {
    fprintf(stderr, "bench_manager: %s\n", mproc_last_error());
    return 1;
  }
  int rc = bench_run(&spec, pingpong_mproc, c) < 0;
  mproc_connection_send_bytes(c->mine, "", 0, 0, 0); /* stop */
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  mproc_connection_destroy(c->mine);
  mproc_listener_destroy(l);
  return rc;
}

/* ---- c-raw: the same over a bare Unix stream socket ---------------------------------------------- */

static void pingpong_raw(void *vctx, int64_t iters) {
  pair_ctx *c = (pair_ctx *)vctx;
  char b = 'x';
  for (int64_t i = 0; i < iters; i++)
    if (write(c->fd, &b, 1) != 1 || read(c->fd, &b, 1) != 1) exit(1);
}

static int run_raw(bench_spec spec, pair_ctx *c) {
  char dir[] = "/tmp/mproc-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s/raw.sock", dir);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    bench_pin_side(c->placement, 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) _exit(1);
    char b;
    while (read(s, &b, 1) == 1)
      if (write(s, &b, 1) != 1) break;
    _exit(0);
  }
  c->fd = accept(l, NULL, NULL);
  close(l);
  unlink(sa.sun_path);
  rmdir(dir);
  if (c->fd < 0) return 1;
  spec.impl = "c-raw";
  int rc = bench_run(&spec, pingpong_raw, c) < 0;
  close(c->fd); /* end of file: the child leaves */
  waitpid(pid, NULL, 0);
  return rc;
}

static int run_pingpong(bench_placement pl) {
  char name[96];
  if (!bench_pair_begin(name, sizeof name, "manager.listener.pingpong", pl)) return 0;
  bench_spec spec = {.name = name, .impl = "mproc", .unit = "us/op", .iters = 20000, .smoke_iters = 100};
  pair_ctx c = {.placement = pl, .fd = -1};
  int rc = run_mproc(spec, &c);
  rc |= run_raw(spec, &c);
  bench_unpin();
  return rc;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  bench_print_cpu_map();
  int rc = 0;
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) rc |= run_pingpong((bench_placement)pl);
  return rc;
}
