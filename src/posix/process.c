/* POSIX PAL: processes running a function (pal.h, "processes running a function"): fork and its pidfd
 * sentinel, ending at once, kill on parent death, and finding a function again in a re-executed child
 * (dl_iterate_phdr).
 * Linux is tested here; the macOS/BSD branches follow their documentation and are untested. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* dl_iterate_phdr */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "../pal.h"
#include "posix.h"

/* ---- the fork sentinel (pidfd) -------------------------------------------------------------------- */

int mproc__posix_pidfd_open(int64_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0); /* close-on-exec, always (pidfd_open(2)) */
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

bool mproc__pal_fork_sentinel_supported(void) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  static _Atomic int known; /* 0 unknown, 1 yes, -1 no */
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (k == 0) {
    int fd = mproc__posix_pidfd_open(getpid());
    k = fd >= 0 ? 1 : -1;
    if (fd >= 0) close(fd);
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k > 0;
#else
  return false;
#endif
}

int mproc__pal_fork_sentinel(mproc__child *child) {
#if defined(__linux__) && defined(SYS_pidfd_open)
  int fd = mproc__posix_pidfd_open(child->pid);
  if (fd < 0) return mproc__fail_os(0, errno, "pidfd_open(%lld)", (long long)child->pid);
  child->handle = (mproc_os_handle)fd;
  return 0;
#else
  (void)child;
  return mproc__fail(MPROC_ENOTSUP, "no pidfd here");
#endif
}

/* ---- fork and exit ------------------------------------------------------------------------------- */

bool mproc__pal_fork_supported(void) { return true; }

MPROC__CHILD_PATH int mproc__pal_fork(int64_t *pid) {
  mproc__pal_global_lock(); /* never let the child inherit the lock held by another thread */
  pid_t p = fork();
  if (p == 0) {
    /* The child is single-threaded and the lock is ours: a fresh one is the same as unlocking */
    mproc__posix_global_lock_forked();
    *pid = 0;
    return 0;
  }
  if (p < 0) {
    int e = errno;
    mproc__pal_global_unlock();
    return mproc__fail_os(0, e, "fork");
  }
  mproc__pal_global_unlock();
  *pid = p;
  return 0;
}

/* Called through a pointer, which the dynamic linker fills when it loads us (a data relocation is never
 * lazy). Called through the PLT instead, _exit would be bound at its first call in every fork child
 * (the parent never calls it): a symbol lookup that writes the GOT and runs through pages of the
 * linker, six page faults per child here, a third of a raw fork's. */
static void (*volatile const g_exit)(int) = _exit;
MPROC__CHILD_PATH void mproc__pal_exit_now(int code) { g_exit(code); }

/* ---- kill on parent death (the kernel's part; see pal.h) ------------------------------------------ */

void mproc__pal_child_bind(mproc__child *child) { (void)child; }

bool mproc__pal_is_main_thread(void) {
#ifdef __linux__
  return (pid_t)syscall(SYS_gettid) == getpid();
#else
  return false;
#endif
}

void mproc__pal_die_with_parent(int64_t parent_pid, bool by_main_thread) {
#ifdef __linux__
  if (!by_main_thread || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return; /* the watchdog alone */
  /* The parent may have died before the prctl: then we have been re-parented and no signal comes. */
  if ((int64_t)getppid() != parent_pid) _exit(1);
#else
  (void)parent_pid;
  (void)by_main_thread;
#endif
}

/* ---- finding a function again in a re-executed child --------------------------------------------- */

/* The objects come from dl_iterate_phdr, never dladdr: in a program linked with -static or -static-pie
 * (glibc or musl) dladdr knows no object at all, while dl_iterate_phdr reports the executable itself
 * (from the auxiliary vector) as in a dynamic one. The first object reported is the main program. */
typedef struct find_mod {
  const char *path; /* resolve: the module's path, NULL for the main program; locate: the one found */
  uintptr_t addr;   /* locate: the function's address; resolve: its offset from the image's start */
  uintptr_t base;   /* out: where the module's image starts (page-aligned lowest PT_LOAD) */
  bool in_code;     /* out: the address lies in one of its executable PT_LOAD segments */
  bool is_main;     /* out (locate): the module is the main program */
  bool first;       /* locate: the next object reported is the first one */
} find_mod;

/* Set f->base to where this object's image starts; whether `at` (base-relative when relative) lies in
 * one of its executable PT_LOAD segments. */
static bool mod_has_code_at(const struct dl_phdr_info *info, find_mod *f, uintptr_t at, bool relative) {
  uintptr_t lo = UINTPTR_MAX;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_LOAD && info->dlpi_phdr[i].p_vaddr < lo) lo = info->dlpi_phdr[i].p_vaddr;
  long page = sysconf(_SC_PAGESIZE);
  f->base = (info->dlpi_addr + lo) & ~(uintptr_t)(page - 1);
  if (relative && at > UINTPTR_MAX - f->base) return false;
  if (relative) at += f->base;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && at >= info->dlpi_addr + ph->p_vaddr &&
        at - (info->dlpi_addr + ph->p_vaddr) < ph->p_memsz)
      return true;
  }
  return false;
}

/* locate: the object whose code holds f->addr. */
static int locate_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  find_mod *f = (find_mod *)data;
  bool first = f->first;
  f->first = false;
  if (!mod_has_code_at(info, f, f->addr, false)) return 0;
  f->in_code = true;
  f->is_main = first;
  f->path = info->dlpi_name;
  return 1;
}

/* resolve: the object named f->path (the first one when NULL), and whether f->addr is in its code. */
static int resolve_cb(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  find_mod *f = (find_mod *)data;
  if (f->path) { /* the parent named the file itself (realpath): this one may be loaded by a link to it
                   (libx.so.1 -> libx.so.1.2.3) */
    char real[PATH_MAX];
    if (!info->dlpi_name || !info->dlpi_name[0]) return 0;
    if (strcmp(info->dlpi_name, f->path) != 0 && (!realpath(info->dlpi_name, real) || strcmp(real, f->path) != 0))
      return 0;
  }
  f->in_code = mod_has_code_at(info, f, f->addr, true);
  return 1;
}

/* Identity of a module file: device, inode, size, modification time. */
static int file_identity(const char *path, uint64_t id[4]) {
  struct stat st;
  if (stat(path, &st) != 0) return mproc__fail_os(MPROC_ENOENT, errno, "stat of module '%s'", path);
  id[0] = (uint64_t)st.st_dev;
  id[1] = (uint64_t)st.st_ino;
  id[2] = (uint64_t)st.st_size;
#if defined(__APPLE__)
  id[3] = (uint64_t)st.st_mtimespec.tv_sec * 1000000000u + (uint64_t)st.st_mtimespec.tv_nsec;
#else
  id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
#endif
  return 0;
}

/* The running executable's identity (see posix.h), taken once per process image: a stat of
 * /proc/self/exe costs about 30 us here, and every start locates its target in the parent and again in
 * a spawned or fork-server child. The kernel refuses to write a file that a process executes
 * (ETXTBSY), so device, inode and size cannot change while this process runs; the modification time
 * can (touch) and is left out (0), so that touching a running program never fails its starts. A fork
 * child shares the executable, and with it the cached value; exec starts afresh. */
static uint64_t g_exe_id[4];
static atomic_bool g_exe_id_known;

void mproc__posix_self_exe_known(const struct stat *st, uint64_t id[4]) {
  id[0] = (uint64_t)st->st_dev;
  id[1] = (uint64_t)st->st_ino;
  id[2] = (uint64_t)st->st_size;
  id[3] = 0;
  if (!atomic_load_explicit(&g_exe_id_known, memory_order_relaxed)) { /* two threads store the same value */
    memcpy(g_exe_id, id, sizeof g_exe_id);
    atomic_store_explicit(&g_exe_id_known, true, memory_order_release);
  }
}

int mproc__posix_self_exe_identity(uint64_t id[4]) {
  if (atomic_load_explicit(&g_exe_id_known, memory_order_acquire)) {
    memcpy(id, g_exe_id, sizeof g_exe_id);
    return 0;
  }
  struct stat st;
  if (stat("/proc/self/exe", &st) != 0) return mproc__fail_os(MPROC_ENOENT, errno, "cannot identify this executable");
  mproc__posix_self_exe_known(&st, id);
  return 0;
}

/* Reference layout: u64 is_main | u64 offset | u64 id[4] | path bytes (to the end). */
int mproc__pal_fn_locate(void *fn, mproc__buf *out) {
  find_mod f = {NULL, (uintptr_t)fn, 0, false, false, true};
  dl_iterate_phdr(locate_cb, &f);
  if (!f.in_code || (!f.is_main && (!f.path || !f.path[0])))
    return mproc__fail(MPROC_ENOENT,
                       "target %p is not inside a module of this program: it cannot be found again "
                       "in a spawned child",
                       fn);
  char resolved[PATH_MAX];
  const char *path = f.path;
  if (!f.is_main && realpath(f.path, resolved)) path = resolved;
  uint64_t hdr[6] = {f.is_main, (uint64_t)((uintptr_t)fn - f.base), 0, 0, 0, 0};
  int rc = f.is_main ? mproc__posix_self_exe_identity(hdr + 2) : file_identity(path, hdr + 2);
  if (rc) return rc;
  rc = mproc__buf_append(out, hdr, sizeof hdr);
  if (!rc && !f.is_main) rc = mproc__buf_append(out, path, strlen(path));
  return rc;
}

int mproc__pal_fn_resolve(const void *ref, size_t len, void **fn) {
  uint64_t hdr[6];
  if (len < sizeof hdr) return mproc__fail(MPROC_EINVAL, "target reference is truncated");
  memcpy(hdr, ref, sizeof hdr);
  if (hdr[0] > 1) return mproc__fail(MPROC_EINVAL, "target reference: bad module kind");
  char path[PATH_MAX];
  size_t plen = len - sizeof hdr;
  if (hdr[0] ? plen != 0 : (plen == 0 || plen >= sizeof path))
    return mproc__fail(MPROC_EINVAL, "target reference: bad module path");
  memcpy(path, (const char *)ref + sizeof hdr, plen);
  path[plen] = '\0';
  if (!hdr[0] && (path[0] != '/' || memchr(path, '\0', plen)))
    return mproc__fail(MPROC_EINVAL, "target reference: the module path is not absolute");
  /* The module's identity first: nothing is loaded (no constructor runs) unless it is the very file the
   * parent had. */
  uint64_t id[4];
  int rc = hdr[0] ? mproc__posix_self_exe_identity(id) : file_identity(path, id);
  if (rc) return rc;
  if (memcmp(id, hdr + 2, sizeof id) != 0)
    return mproc__fail(MPROC_ENOENT,
                       "the child runs a different binary than the parent ('%s' changed on disk?): "
                       "the target cannot be found again",
                       hdr[0] ? "the executable" : path);
  if (!hdr[0] && !dlopen(path, RTLD_NOW | RTLD_NOLOAD) && !dlopen(path, RTLD_NOW))
    return mproc__fail(MPROC_ENOENT, "cannot load module '%s' of the target: %s", path, dlerror());
  find_mod f = {hdr[0] ? NULL : path, hdr[1] > UINTPTR_MAX ? UINTPTR_MAX : (uintptr_t)hdr[1], 0, false, false, true};
  dl_iterate_phdr(resolve_cb, &f);
  if (!f.base)
    return mproc__fail(MPROC_ENOENT, "module '%s' of the target is not mapped", hdr[0] ? "the executable" : path);
  if (!f.in_code)
    return mproc__fail(MPROC_EINVAL, "target reference: offset %#llx is not in the code of %s",
                       (unsigned long long)hdr[1], hdr[0] ? "the executable" : path);
  *fn = (void *)(f.base + (uintptr_t)hdr[1]);
  return 0;
}
