/* Benchmark area "manager": the server process way of sharing state, mproc beside the raw POSIX calls and
 * CPython's multiprocessing (bench/py/bench_manager.py). So far its transport:
 *
 *   manager.listener.pingpong.<placement>  1-byte round trip over a Listener/Client connection on a
 *                                          Unix socket (authkey handshake once, before timing)
 *                                          | c-raw: a Unix stream socket, listen/connect, 1-byte write
 *                                            and read
 *
 *   manager.dict.setget.<placement>        one d[key] = value and one d[key] from a client process, the
 *                                          server in another (a 3-byte key, a 16-byte value)
 *                                          | c-raw: two request/reply round trips over a Unix stream
 *                                            socket to a server of one slot: a set (key and value in,
 *                                            an ack out), a get (key in, value out)
 *                                          | python: Manager().dict() (SyncManager, its server pinned)
 * The server is side 1 (pinned as its first work: the mproc one is a fork child that calls
 * mproc_manager_serve_forever, the c-raw one a fork child), the timing client side 0.
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

/* A listening Unix stream socket at dir/raw.sock (dir made here, the caller's template): the socket, or -1. */
static int raw_listen(char *dir, struct sockaddr_un *sa) {
  if (!mkdtemp(dir)) return -1;
  *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
  snprintf(sa->sun_path, sizeof sa->sun_path, "%s/raw.sock", dir);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0 || bind(l, (struct sockaddr *)sa, sizeof *sa) != 0 || listen(l, 1) != 0) return -1;
  return l;
}

static int run_raw(bench_spec spec, pair_ctx *c) {
  char dir[] = "/tmp/mproc-bench-XXXXXX";
  struct sockaddr_un sa;
  int l = raw_listen(dir, &sa);
  if (l < 0) return 1;
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

/* ---- manager.dict.setget ------------------------------------------------------------------------ */

static const char kValue[16] = "0123456789abcdef";

static void on_listening(const char *address, void *arg) {
  mproc_connection_send_bytes((mproc_connection *)arg, address, strlen(address), 0, MPROC_ALL);
}
static int serve_pinned(const mproc_args *a) {
  bench_pin_side(*(const bench_placement *)a->data, 1);
  return mproc_manager_serve_forever(
             &(mproc_manager_opts){.on_listening = on_listening, .on_listening_arg = a->connections[0]}) != 0;
}

typedef struct setget_ctx {
  mproc_manager *m;
  mproc_mdict d;
  int fd; /* c-raw */
} setget_ctx;

static void setget_mproc(void *vctx, int64_t iters) {
  setget_ctx *c = (setget_ctx *)vctx;
  for (int64_t i = 0; i < iters; i++) {
    char *v;
    size_t n;
    if (mproc_mdict_set(c->m, c->d, "key", 3, kValue, sizeof kValue, MPROC_INFINITE) != 0 ||
        mproc_mdict_get(c->m, c->d, "key", 3, &v, &n, MPROC_INFINITE) != 0)
      exit(1);
    mproc_free(v);
  }
}

static int setget_run_mproc(bench_spec spec, bench_placement pl) {
  mproc_connection *mine, *theirs;
  mproc_process *p;
  if (mproc_pipe(true, &mine, &theirs) != 0 ||
      mproc_process_create(&p, &(mproc_process_opts){.target = serve_pinned,
                                                     .arg = &pl,
                                                     .arg_size = sizeof pl,
                                                     .connections = &theirs,
                                                     .connection_count = 1,
                                                     .start_method = MPROC_START_FORK}) != 0 ||
      mproc_process_start(p) != 0) {
    fprintf(stderr, "bench_manager: %s\n", mproc_last_error());
    return 1;
  }
  mproc_connection_destroy(theirs);
  char *address;
  size_t n;
  setget_ctx c = {.fd = -1};
  if (mproc_connection_recv_bytes(mine, 0, 20000, &address, &n) != 0 ||
      mproc_manager_connect(&c.m, &(mproc_manager_opts){.address = address}, 20000) != 0 ||
      mproc_manager_dict(c.m, &c.d, 20000) != 0) {
    fprintf(stderr, "bench_manager: %s\n", mproc_last_error());
    return 1;
  }
  mproc_free(address);
  int rc = bench_run(&spec, setget_mproc, &c) < 0;
  mproc_manager_shutdown(c.m, 20000);
  mproc_manager_destroy(c.m);
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  mproc_connection_destroy(mine);
  return rc;
}

/* c-raw's protocol: a request is 1 byte of op ('s' or 'g'), 1 byte of key length, the key, and for a set
 * the value; a reply is 1 byte of status and for a get the value. One write and one read each way. */
static void setget_raw(void *vctx, int64_t iters) {
  setget_ctx *c = (setget_ctx *)vctx;
  char req[2 + 3 + sizeof kValue] = {'s', 3, 'k', 'e', 'y'};
  memcpy(req + 5, kValue, sizeof kValue);
  char rep[1 + sizeof kValue];
  for (int64_t i = 0; i < iters; i++) {
    req[0] = 's';
    if (write(c->fd, req, sizeof req) != (ssize_t)sizeof req || read(c->fd, rep, sizeof rep) != 1) exit(1);
    req[0] = 'g';
    if (write(c->fd, req, 5) != 5 || read(c->fd, rep, sizeof rep) != (ssize_t)sizeof rep) exit(1);
  }
}

static void raw_serve(int s) {
  char req[256], slot[sizeof kValue + 1] = {0}, key[8] = {0};
  ssize_t n;
  while ((n = read(s, req, sizeof req)) >= 5) {
    if (req[0] == 's' && (size_t)n == 5 + sizeof kValue) {
      memcpy(key, req + 2, 3);
      memcpy(slot + 1, req + 5, sizeof kValue);
      slot[0] = 0;
      if (write(s, slot, 1) != 1) break;
    } else if (req[0] == 'g' && !memcmp(key, req + 2, 3)) {
      if (write(s, slot, sizeof slot) != (ssize_t)sizeof slot) break;
    } else {
      break;
    }
  }
}

static int setget_run_raw(bench_spec spec, bench_placement pl) {
  char dir[] = "/tmp/mproc-bench-XXXXXX";
  struct sockaddr_un sa;
  int l = raw_listen(dir, &sa);
  if (l < 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) { /* the server */
    bench_pin_side(pl, 1);
    int s = accept(l, NULL, NULL);
    if (s >= 0) raw_serve(s);
    _exit(0);
  }
  setget_ctx c = {.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  int rc = c.fd < 0 || connect(c.fd, (struct sockaddr *)&sa, sizeof sa) != 0;
  close(l);
  unlink(sa.sun_path);
  rmdir(dir);
  spec.impl = "c-raw";
  if (!rc) rc = bench_run(&spec, setget_raw, &c) < 0;
  close(c.fd); /* end of file: the server leaves */
  waitpid(pid, NULL, 0);
  return rc;
}

static int run_setget(bench_placement pl) {
  char name[96];
  if (!bench_pair_begin(name, sizeof name, "manager.dict.setget", pl)) return 0;
  bench_spec spec = {.name = name, .impl = "mproc", .unit = "us/op", .iters = 20000, .smoke_iters = 100};
  int rc = setget_run_mproc(spec, pl);
  rc |= setget_run_raw(spec, pl);
  bench_unpin();
  return rc;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  bench_init(argc, argv);
  bench_print_cpu_map();
  int rc = 0;
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) rc |= run_pingpong((bench_placement)pl);
  for (int pl = BENCH_SAME_CPU; pl <= BENCH_CROSS_CPU; ++pl) rc |= run_setget((bench_placement)pl);
  return rc;
}
