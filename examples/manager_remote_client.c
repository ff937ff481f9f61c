/* A client of a manager that another program serves (examples/manager_remote_server.c): it connects
 * with the address and the key, finds the shared objects by name (the first client to ask creates
 * them), and adds its own entry under a managed Lock.
 *
 *   example_manager_remote_client HOST:PORT [--shutdown] < keyfile
 *
 * The key is the first line of standard input (see examples/manager_remote_server.c). With --shutdown
 * it then stops the server. Run with no arguments (as the tour does), it plays both
 * parts on this machine: it starts the server program beside it on the loopback with a key of its own,
 * reads the address from the server's first line, runs three clients one after the other, and shuts
 * the server down. */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define TIMEOUT 20000

/* One client's visit: connect, take the lock, count itself in, list who came, leave. */
static int visit(const char *address, const char *key, const char *who, bool shutdown) {
  mproc_manager *m;
  mproc_manager_opts o = {.address = address, .authkey = key, .authkey_size = strlen(key)};
  if (mproc_manager_connect(&m, &o, TIMEOUT) != 0) {
    fprintf(stderr, "%s: connect to %s: %s\n", who, address, mproc_last_error());
    return 1;
  }
  mproc_mdict visitors = {0};
  mproc_mlock lock = {0};
  int64_t n = 0;
  int rc = mproc_manager_dict_named(m, "visitors", &visitors, TIMEOUT);
  if (rc == 0) rc = mproc_manager_lock_named(m, "visitors.lock", &lock, TIMEOUT);
  if (rc == 0) rc = mproc_mlock_acquire(m, lock, TIMEOUT);
  if (rc == 0) { /* the count and the entry change together: no other client sees one without the other */
    rc = mproc_mdict_increment(m, visitors, "count", 5, 1, &n, TIMEOUT);
    char key_of[32];
    snprintf(key_of, sizeof key_of, "visitor %lld", (long long)n);
    if (rc == 0) rc = mproc_mdict_set(m, visitors, key_of, strlen(key_of), who, strlen(who), TIMEOUT);
    int rrc = mproc_mlock_release(m, lock, TIMEOUT);
    if (rc == 0) rc = rrc;
  }
  mproc_bytes *items = NULL;
  size_t count = 0;
  if (rc == 0) rc = mproc_mdict_items(m, visitors, &items, &count, TIMEOUT);
  if (rc == 0) {
    printf("%s: I am visitor %lld; the server holds:", who, (long long)n);
    for (size_t i = 0; i < count; ++i)
      printf(" %s=%s", (const char *)items[2 * i].data, (const char *)items[2 * i + 1].data);
    printf("\n");
  }
  mproc_free(items);
  if (rc == 0 && shutdown) rc = mproc_manager_shutdown(m, TIMEOUT);
  if (rc != 0) fprintf(stderr, "%s: %s\n", who, mproc_last_error());
  mproc_manager_destroy(m); /* only a handle: the server goes on unless shut down */
  return rc == 0 ? 0 : 1;
}

/* No arguments: start the server program (beside this one) on the loopback, then visit it. */
static int both_parts(const char *self) {
  char server[4096];
  const char *slash = strrchr(self, '/'), *bslash = strrchr(self, '\\');
  if (bslash && (!slash || bslash > slash)) slash = bslash;
  int dir = slash ? (int)(slash - self + 1) : 0;
  const char *ext = strlen(self) > 4 && strcmp(self + strlen(self) - 4, ".exe") == 0 ? ".exe" : "";
  snprintf(server, sizeof server, "%.*sexample_manager_remote_server%s", dir, self, ext);
  const char *key = "a key for this run only";
  const char *argv[] = {server, "127.0.0.1:0", NULL};
  mproc_popen *p;
  mproc_popen_opts po = {.argv = argv, .stdin_mode = MPROC_PIPE, .stdout_mode = MPROC_PIPE};
  size_t wrote;
  if (mproc_popen_create(&p, &po) != 0 || mproc_popen_write(p, key, strlen(key), TIMEOUT, &wrote) != 0 ||
      mproc_popen_write(p, "\n", 1, TIMEOUT, &wrote) != 0 || mproc_popen_close_stdin(p) != 0) {
    fprintf(stderr, "start %s: %s\n", server, mproc_last_error());
    return 1;
  }
  char line[256], address[256] = "";
  size_t len;
  mproc_line_end end;
  int rc = mproc_popen_readline(p, 1, line, sizeof line, TIMEOUT, &len, &end);
  const char *said = "listening on ";
  if (rc == 0 && strncmp(line, said, strlen(said)) == 0 && len > strlen(said)) {
    snprintf(address, sizeof address, "%s", line + strlen(said));
    printf("the server says: %s\n", line);
    fflush(stdout);
    rc = visit(address, key, "first", false) || visit(address, key, "second", false) ||
         visit(address, key, "third", true);
  } else {
    fprintf(stderr, "the server did not say where it listens: %s\n", rc ? mproc_last_error() : line);
    rc = 1;
  }
  while (mproc_popen_readline(p, 1, line, sizeof line, TIMEOUT, &len, &end) == 0 && len > 0)
    printf("the server says: %s\n", line);
  int code = -1;
  if (mproc_popen_wait(p, TIMEOUT, &code) != 0) {
    mproc_popen_kill(p);
    mproc_popen_wait(p, TIMEOUT, &code);
  }
  mproc_popen_destroy(p);
  printf("the server ended with code %d\n", code);
  return rc == 0 && code == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  if (argc == 1) return both_parts(argv[0]);
  char key[256];
  bool shutdown = argc == 3 && strcmp(argv[2], "--shutdown") == 0;
  if (argc > 3 || (argc == 3 && !shutdown) || !fgets(key, sizeof key, stdin) || strcspn(key, "\r\n") == 0) {
    fprintf(stderr,
            "usage: %s HOST:PORT [--shutdown], the key on the first line of stdin\n"
            "       %s   (both parts, on the loopback)\n",
            argv[0], argv[0]);
    return 2;
  }
  key[strcspn(key, "\r\n")] = '\0';
  char who[64];
  snprintf(who, sizeof who, "client %ld", (long)mproc_getpid());
  return visit(argv[1], key, who, shutdown);
}
