/* mproc_main_guard: the entry of every process mproc starts by running this program again. argv[1] is
 * "<flag><handle>"; the guard proves that the handle is a boot link this process's parent made for it
 * (see core.h and the PAL's mproc__pal_boot_link_check), then runs the role the flag names, which never
 * returns. Roles: a spawned child (boot.c), the fork server (forkserver.c); later servers (a manager, an
 * MPI worker) add a line to k_roles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process_internal.h"

#define EXIT_BOOT_FAILED MPROC_EXIT_BOOT_FAILED

/* The guard refuses a flag: one line on stderr (naming the flag, not echoing what followed it), and
 * the process ends at once, running nothing else (no atexit handler either). */
static void refuse(const char *prefix, const char *why) {
  fprintf(stderr, "mproc: refusing %.*s: %s\n", (int)strlen(prefix) - 1, prefix, why);
  fflush(stderr);
  mproc__pal_exit_now(MPROC_EXIT_GUARD_REFUSED);
}

/* The handle of a "--mproc-...=<handle>" argument, once it is proven to be a boot link that our parent
 * made for us (see mproc_main_guard in core.h); otherwise the process ends here. */
static mproc_os_handle trusted_handle(const char *flag, const char *prefix) {
  mproc__pal_unsetenv(MPROC__SPAWN_ENV);
  if (mproc__pal_env_is_set(MPROC__EAGER_ENV)) { /* ours (mproc__respawn_self): not for what we start */
    mproc__pal_unsetenv(MPROC__EAGER_ENV);
    const char *var = mproc__pal_eager_binding_var();
    if (var) mproc__pal_unsetenv(var);
  }
  if (mproc__pal_secure_exec())
    refuse(prefix,
           "this program runs set-user-ID, set-group-ID or with file capabilities, and such a program "
           "never acts as an mproc child");
  const char *s = flag + strlen(prefix);
  uint64_t v = 0, max = mproc__pal_handle_max();
  size_t n = 0;
  for (; s[n]; ++n) {
    if (s[n] < '0' || s[n] > '9') refuse(prefix, "the handle is not a decimal number");
    v = v * 10 + (uint64_t)(s[n] - '0');
    if (v > max) refuse(prefix, "the handle number is out of range");
  }
  if (n == 0) refuse(prefix, "no handle number");
  if (mproc__pal_boot_link_check((mproc_os_handle)v) != 0) refuse(prefix, mproc_last_error());
  return (mproc_os_handle)v;
}

/* A spawned child: receive the bootstrap on the boot link, then run it (boot.c). */
static void spawned_child(mproc_os_handle h) {
  mproc_connection *link = mproc__connection_wrap(mproc__conn_end_link(h));
  if (!link) exit(EXIT_BOOT_FAILED);
  mproc__pal_set_cloexec(h, true);
  char *msg = NULL;
  size_t len = 0;
  if (mproc_connection_recv_bytes(link, 0, MPROC_INFINITE, &msg, &len) != 0) {
    fprintf(stderr, "mproc: spawned child could not receive its bootstrap: %s\n", mproc_last_error());
    exit(EXIT_BOOT_FAILED);
  }
  mproc__boot_run(link, msg, len);
}

static const struct {
  const char *flag;
  void (*run)(mproc_os_handle h); /* never returns */
} k_roles[] = {
    {MPROC__SPAWN_FLAG, spawned_child},
    {MPROC__FORKSERVER_FLAG, mproc__forkserver_serve},
};

int mproc_main_guard(int argc, char **argv) {
  mproc__me.guard_ran = true;
  if (argc < 2 || !argv || !argv[1]) return 0;
  for (size_t i = 0; i < MPROC__ARRAY_LEN(k_roles); ++i)
    if (strncmp(argv[1], k_roles[i].flag, strlen(k_roles[i].flag)) == 0) {
      k_roles[i].run(trusted_handle(argv[1], k_roles[i].flag));
      mproc__pal_exit_now(EXIT_BOOT_FAILED); /* not reached: a role never returns */
    }
  return 0;
}
