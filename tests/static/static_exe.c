/* A program linked statically (-static, -static-pie; glibc or musl) that starts a child with each of
 * the re-executing start methods, spawn and forkserver, and checks what the child did: its exit code
 * and a message it sent back over a connection. First it checks that it is linked as its first
 * argument says (static, static-pie or dynamic), from its own program headers. Prints one line per
 * check and exits 0 when all passed (tests/CMakeLists.txt runs it). */
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <mproc.h>

/* The child's part: answer the parent's bytes with a message of its own, and exit with 42. */
static int target(const mproc_args *a) {
  if (a->connection_count != 1 || a->size != 5 || memcmp(a->data, "hello", 5) != 0) return 3;
  char msg[64];
  int n = snprintf(msg, sizeof msg, "pong from %lld", (long long)mproc_parent_process_pid());
  if (mproc_connection_send_bytes(a->connections[0], msg, (size_t)n, 0, MPROC_ALL) != 0) return 4;
  return 42;
}

static int run(mproc_start_method method) {
  const char *name = mproc_start_method_name(method);
  mproc_connection *ends[2] = {NULL, NULL};
  mproc_process *p = NULL;
  char buf[64], want[64];
  size_t got = 0;
  int code = -1;
  snprintf(want, sizeof want, "pong from %lld", (long long)getpid()); /* the child's parent is this process */
  int rc = mproc_pipe(false, &ends[0], &ends[1]);
  if (!rc) {
    mproc_process_opts o = {.target = target,
                            .arg = "hello",
                            .arg_size = 5,
                            .connections = &ends[1],
                            .connection_count = 1,
                            .start_method = method};
    rc = mproc_process_create(&p, &o);
  }
  if (!rc) rc = mproc_process_start(p);
  if (!rc) rc = mproc_connection_recv_bytes_into(ends[0], buf, sizeof buf - 1, 10000, &got);
  buf[rc ? 0 : got] = '\0';
  if (!rc) rc = mproc_process_join(p, 10000);
  if (!rc && !mproc_process_exitcode(p, &code)) rc = MPROC_ESTATE;
  bool ok = !rc && code == 42 && strcmp(buf, want) == 0;
  if (ok)
    printf("%s: ok (exit code %d, \"%s\")\n", name, code, buf);
  else
    printf("%s: FAILED: %s (%s), exit code %d, message \"%s\" (expected 42, \"%s\")\n", name, mproc_strerror(rc),
           rc ? mproc_last_error() : "", code, buf, want);
  mproc_process_destroy(p);
  mproc_connection_destroy(ends[0]);
  mproc_connection_destroy(ends[1]);
  return ok ? 0 : 1;
}

/* How this program is linked: "dynamic" (it names a program interpreter), "static-pie" (relocates itself:
 * a dynamic section, no interpreter) or "static". */
static const char *linkage(void) {
  const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
  bool interp = false, dynamic = false;
  for (unsigned long i = 0; ph && i < getauxval(AT_PHNUM); ++i) {
    interp |= ph[i].p_type == PT_INTERP;
    dynamic |= ph[i].p_type == PT_DYNAMIC;
  }
  return interp ? "dynamic" : dynamic ? "static-pie" : "static";
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  const char *linked = linkage();
  if (argc != 2 || strcmp(argv[1], linked) != 0) {
    printf("FAILED: linked %s, expected %s\n", linked, argc == 2 ? argv[1] : "(no argument)");
    return 1;
  }
  printf("linked %s\n", linked);
  int failures = run(MPROC_START_SPAWN) + run(MPROC_START_FORKSERVER);
  return failures ? 1 : 0;
}
