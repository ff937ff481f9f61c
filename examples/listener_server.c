/* A C server that any client holding its authkey can talk to (multiprocessing.connection.Listener and
 * Client): a Python script, examples/listener_python.py, when a Python 3.12 or later is on the PATH as
 * python3, else a C client of its own (a child, which inherits this process's authkey). TCP on the
 * loopback; the key is this process's own: 32 random bytes, never on a command line. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#ifndef EXAMPLES_DIR
#define EXAMPLES_DIR "."
#endif

/* The C client: send three words, print the replies. */
static int c_client(const mproc_args *a) {
  char address[128], *reply;
  size_t n;
  snprintf(address, sizeof address, "%.*s", (int)a->size, (const char *)a->data);
  mproc_connection *c;
  if (mproc_client(&c, &(mproc_client_opts){.address = address, .process_authkey = true}, 10000) != 0) return 1;
  const char *words[] = {"hello", "from", "c"};
  for (int i = 0; i < 3; ++i) {
    if (mproc_connection_send_bytes(c, words[i], strlen(words[i]), 0, MPROC_ALL) != 0 ||
        mproc_connection_recv_bytes(c, 0, 10000, &reply, &n) != 0)
      return 1;
    printf("c client got: %s\n", reply);
    mproc_free(reply);
  }
  mproc_connection_send_bytes(c, "", 0, 0, 0); /* done */
  mproc_connection_destroy(c);
  return 0;
}

/* The Python client, with the key in hex on its stdin; NULL when there is no Python 3.12+. */
static mproc_popen *python_client(const char *address) {
  const char *check[] = {"python3", "-c", "import sys; sys.exit(sys.version_info < (3, 12))", NULL};
  int code = -1;
  if (mproc_call(&(mproc_popen_opts){.argv = check, .stderr_mode = MPROC_DEVNULL}, 20000, &code) != 0 || code != 0)
    return NULL;
  const char *argv[] = {"python3", EXAMPLES_DIR "/listener_python.py", address, NULL};
  mproc_popen *p;
  if (mproc_popen_create(&p, &(mproc_popen_opts){.argv = argv, .stdin_mode = MPROC_PIPE}) != 0) return NULL;
  unsigned char key[MPROC_AUTHKEY_MAX];
  char hex[2 * MPROC_AUTHKEY_MAX + 2] = "";
  size_t klen = 0, w;
  mproc_current_process_authkey(key, sizeof key, &klen);
  for (size_t i = 0; i < klen; ++i) snprintf(hex + 2 * i, 3, "%02x", key[i]);
  hex[2 * klen] = '\n';
  mproc_popen_write(p, hex, 2 * klen + 1, 10000, &w);
  mproc_popen_close_stdin(p);
  return p;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  mproc_listener *l;
  if (mproc_listener_create(&l, &(mproc_listener_opts){.address = "127.0.0.1:0", .process_authkey = true}) != 0) {
    fprintf(stderr, "listener: %s\n", mproc_last_error());
    return 1;
  }
  const char *address = mproc_listener_address(l); /* the port the system picked */
  printf("listening on %s\n", address);
  mproc_popen *py = python_client(address);
  mproc_process *child = NULL;
  if (!py) {
    printf("no Python 3.12+ as python3 here: the client is this program's child\n");
    mproc_process_create(&child,
                         &(mproc_process_opts){.target = c_client, .arg = address, .arg_size = strlen(address)});
    mproc_process_start(child);
  }
  fflush(stdout);
  mproc_connection *c;
  if (mproc_listener_accept(l, 20000, &c) != 0) { /* its key proven, and ours */
    fprintf(stderr, "accept: %s\n", mproc_last_error());
    return 1;
  }
  char *msg;
  size_t n;
  while (mproc_connection_recv_bytes(c, 0, 10000, &msg, &n) == 0 && n > 0) { /* answer in capitals */
    for (size_t i = 0; i < n; ++i) msg[i] = (char)toupper((unsigned char)msg[i]);
    mproc_connection_send_bytes(c, msg, n, 0, MPROC_ALL);
    mproc_free(msg);
  }
  int code = 0;
  if (py) mproc_popen_wait(py, 20000, &code);
  if (child && mproc_process_join(child, 20000) == 0) mproc_process_exitcode(child, &code);
  mproc_popen_destroy(py);
  mproc_process_destroy(child);
  mproc_connection_destroy(c);
  mproc_listener_destroy(l);
  return code;
}
