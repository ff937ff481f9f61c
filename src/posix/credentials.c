/* POSIX PAL, a helper of spawn.c (posix.h): the credentials and limits of a child program, the POSIX
 * block of mproc__spawn_req (Python's user, group, extra_groups and umask, and setrlimit).
 *
 * Everything that can fail for a reason the caller can fix is done here in the parent, before any
 * child exists: names are looked up (getpwnam_r and friends, which take locks and may talk to NSS
 * daemons, so never in a child), ids and limits are checked and converted. The child then makes only
 * system calls on memory prepared here (mproc__posix_creds_apply), and reports a refusal through the
 * spawn's error pipe; mproc__posix_creds_fail words it in the parent.
 *
 * Why fork and not vfork for user, group and extra_groups (spawn.c chooses): glibc's setgroups, setregid
 * and setreuid change the credentials of *every thread* of the process (Linux keeps them per thread, and
 * POSIX wants them per process), by signalling each thread the C library knows of. A vfork child shares
 * its parent's memory, so it would walk the parent's thread list and signal the parent's threads
 * (CPython refuses vfork for the same reason). umask and setrlimit change the calling process only and
 * are safe in a vfork child.
 *
 * What the child does when user or group is set and extra_groups is not: it clears its supplementary
 * groups (setgroups(0)), as libuv and Rust do, so a child of root that runs as "nobody" does not keep
 * root's groups (Python keeps them). A parent that may not change groups (EPERM: not root) keeps its
 * own; it can then only change to its own user and group anyway, so nothing is gained by refusing. With
 * user and no group, the gid is the user's primary group (as su and runuser give), not the parent's.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "../pal.h"
#include "posix.h"

/* ---- the resources ---------------------------------------------------------------------------- */

static const struct {
  int kind; /* mproc__rlimit_kind */
  int res;  /* RLIMIT_*, or -1 where the system has none */
  const char *name;
} k_limits[] = {
    {MPROC__RLIMIT_CORE, RLIMIT_CORE, "RLIMIT_CORE"},
    {MPROC__RLIMIT_CPU, RLIMIT_CPU, "RLIMIT_CPU"},
    {MPROC__RLIMIT_DATA, RLIMIT_DATA, "RLIMIT_DATA"},
    {MPROC__RLIMIT_FSIZE, RLIMIT_FSIZE, "RLIMIT_FSIZE"},
    {MPROC__RLIMIT_NOFILE, RLIMIT_NOFILE, "RLIMIT_NOFILE"},
    {MPROC__RLIMIT_STACK, RLIMIT_STACK, "RLIMIT_STACK"},
    {MPROC__RLIMIT_AS, RLIMIT_AS, "RLIMIT_AS"},
#ifdef RLIMIT_NPROC
    {MPROC__RLIMIT_NPROC, RLIMIT_NPROC, "RLIMIT_NPROC"},
#else
    {MPROC__RLIMIT_NPROC, -1, "RLIMIT_NPROC"},
#endif
#ifdef RLIMIT_MEMLOCK
    {MPROC__RLIMIT_MEMLOCK, RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"},
#else
    {MPROC__RLIMIT_MEMLOCK, -1, "RLIMIT_MEMLOCK"},
#endif
};

static const char *limit_name(int kind) {
  for (size_t i = 0; i < MPROC__ARRAY_LEN(k_limits); ++i)
    if (k_limits[i].kind == kind) return k_limits[i].name;
  return "RLIMIT_?";
}

/* A limit as the system takes it: MPROC's UINT64_MAX (and anything at or above the system's own
 * infinity) is RLIM_INFINITY; a value rlim_t cannot hold is refused. */
static int to_rlim(uint64_t v, size_t i, const char *what, rlim_t *out) {
  if (v == UINT64_MAX || v >= (uint64_t)RLIM_INFINITY) {
    *out = RLIM_INFINITY;
    return 0;
  }
  *out = (rlim_t)v;
  if ((uint64_t)*out != v)
    return mproc__fail(MPROC_EINVAL, "popen: rlimits[%zu]: %s limit %llu does not fit this system's rlim_t", i, what,
                       (unsigned long long)v);
  return 0;
}

/* ---- names and ids ---------------------------------------------------------------------------- */

/* A name of decimal digits only is a numeric id (a user or group named "1000" would be found as id
 * 1000). *id is set when it is one; false otherwise. */
static bool numeric_id(const char *s, unsigned long long *id) {
  if (!*s) return false;
  unsigned long long v = 0;
  for (const char *p = s; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    if (v > (ULLONG_MAX - 9) / 10) return false;
    v = v * 10 + (unsigned)(*p - '0');
  }
  *id = v;
  return true;
}

/* One lookup in the user or group database, by user name (name set, group false), by uid (name NULL:
 * *uid), or by group name (group true). The *_r calls want a buffer of a size only a retry finds out:
 * it starts at the system's hint and doubles on ERANGE. 1 found (*uid and *gid: the user's uid and
 * primary group, or the group's gid), 0 not found, or an error. */
static int lookup(const char *name, bool group, uid_t *uid, gid_t *gid) {
  long hint = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
  size_t size = hint > 0 && hint < (1L << 20) ? (size_t)hint : 16384;
  char *buf = NULL;
  int rc;
  for (;; size *= 2) {
    char *more = size <= (1u << 24) ? (char *)realloc(buf, size) : NULL;
    if (!more) {
      rc = mproc__fail(MPROC_ENOMEM, "popen: out of memory reading the %s database", group ? "group" : "user");
      break;
    }
    buf = more;
    struct passwd pw, *pw_found = NULL;
    struct group gr, *gr_found = NULL;
    int e = group  ? getgrnam_r(name, &gr, buf, size, &gr_found)
            : name ? getpwnam_r(name, &pw, buf, size, &pw_found)
                   : getpwuid_r(*uid, &pw, buf, size, &pw_found);
    if (e == ERANGE) continue;
    if (pw_found) {
      *uid = pw.pw_uid;
      *gid = pw.pw_gid;
    } else if (gr_found) {
      *gid = gr.gr_gid;
    }
    /* not found is 0 with nothing found; some systems give ENOENT, ESRCH, EBADF or EPERM for it too */
    if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
      rc = pw_found || gr_found;
    else if (name)
      rc = mproc__fail_os(MPROC_ESYS, e, "popen: looking up %s '%s'", group ? "group" : "user", name);
    else
      rc = mproc__fail_os(MPROC_ESYS, e, "popen: looking up uid %lu", (unsigned long)*uid);
    break;
  }
  free(buf);
  return rc;
}

/* A group name or decimal gid. `what` names it in messages ("group", "extra_groups[2]"). */
static int resolve_group(const char *name, const char *what, gid_t *gid) {
  unsigned long long id;
  if (numeric_id(name, &id)) {
    *gid = (gid_t)id;
    if ((unsigned long long)*gid != id || *gid == (gid_t)-1)
      return mproc__fail(MPROC_EINVAL, "popen: %s %s is not a valid group id", what, name);
    return 0;
  }
  uid_t unused = 0;
  int found = lookup(name, true, &unused, gid);
  if (found < 0) return found;
  if (!found) return mproc__fail(MPROC_ENOENT, "popen: %s '%s' does not exist (no such group)", what, name);
  return 0;
}

/* ---- the plan --------------------------------------------------------------------------------- */

int mproc__posix_creds_make(const mproc__spawn_req *req, mproc__posix_creds *c) {
  memset(c, 0, sizeof *c);
  c->umask = req->umask & MPROC__PAL_UMASK_SET ? req->umask & 0777 : -1;
  int rc = 0;
  bool user_gid_known = false;
  gid_t user_gid = 0;
  if (req->user) {
    unsigned long long id;
    bool numeric = numeric_id(req->user, &id);
    if (numeric) {
      c->uid = (uid_t)id;
      if ((unsigned long long)c->uid != id || c->uid == (uid_t)-1)
        return mproc__fail(MPROC_EINVAL, "popen: user %s is not a valid user id", req->user);
    }
    int found = lookup(numeric ? NULL : req->user, false, &c->uid, &user_gid);
    if (found < 0) return found;
    if (!found && !numeric)
      return mproc__fail(MPROC_ENOENT, "popen: user '%s' does not exist (no such user)", req->user);
    user_gid_known = found == 1;
    c->set_uid = true;
  }
  if (req->group) {
    rc = resolve_group(req->group, "group", &c->gid);
    if (rc) return rc;
    c->set_gid = true;
  } else if (req->user) {
    if (!user_gid_known)
      return mproc__fail(MPROC_EINVAL,
                         "popen: user %s has no entry in the user database, so its group is unknown: set group too",
                         req->user);
    c->gid = user_gid;
    c->set_gid = true;
  }
  if (req->extra_groups) {
    size_t n = 0;
    while (req->extra_groups[n]) ++n;
    long max = sysconf(_SC_NGROUPS_MAX);
    if (max >= 0 && n > (size_t)max)
      return mproc__fail(MPROC_EINVAL, "popen: extra_groups has %zu groups; this system allows %ld", n, max);
    c->groups = (gid_t *)malloc((n ? n : 1) * sizeof(gid_t));
    if (!c->groups) return mproc__fail(MPROC_ENOMEM, "popen: out of memory");
    for (size_t i = 0; i < n; ++i) {
      char what[40];
      snprintf(what, sizeof what, "extra_groups[%zu]", i);
      rc = resolve_group(req->extra_groups[i], what, &c->groups[i]);
      if (rc) {
        mproc__posix_creds_free(c);
        return rc;
      }
    }
    c->ngroups = n;
    c->set_groups = true;
  } else if (req->user || req->group) {
    c->drop_groups = true;
  }
  if (req->rlimits_count) {
    c->limits = (mproc__posix_limit *)malloc(req->rlimits_count * sizeof *c->limits);
    if (!c->limits) {
      mproc__posix_creds_free(c);
      return mproc__fail(MPROC_ENOMEM, "popen: out of memory");
    }
    for (size_t i = 0; i < req->rlimits_count && rc == 0; ++i) {
      const mproc__rlimit *l = &req->rlimits[i];
      int res = -2;
      for (size_t k = 0; k < MPROC__ARRAY_LEN(k_limits); ++k)
        if (k_limits[k].kind == l->resource) res = k_limits[k].res;
      if (res == -2)
        rc = mproc__fail(MPROC_EINVAL, "popen: rlimits[%zu].resource %d is not an mproc_rlimit_resource", i,
                         l->resource);
      else if (res == -1)
        rc = mproc__fail(MPROC_ENOTSUP, "popen: rlimits[%zu]: this system has no %s", i, limit_name(l->resource));
      if (rc == 0) rc = to_rlim(l->soft, i, "soft", &c->limits[i].rl.rlim_cur);
      if (rc == 0) rc = to_rlim(l->hard, i, "hard", &c->limits[i].rl.rlim_max);
      c->limits[i].res = res;
      c->limits[i].kind = l->resource;
    }
    if (rc) {
      mproc__posix_creds_free(c);
      return rc;
    }
    c->nlimits = req->rlimits_count;
  }
  return 0;
}

void mproc__posix_creds_free(mproc__posix_creds *c) {
  free(c->groups);
  free(c->limits);
  c->groups = NULL;
  c->limits = NULL;
}

/* ---- in the child ----------------------------------------------------------------------------- */

int mproc__posix_creds_apply(const mproc__posix_creds *c, int *step, size_t *index) {
  *index = 0;
  if (c->umask >= 0) umask((mode_t)c->umask);
  *step = MPROC__POSIX_STEP_SETRLIMIT;
  for (size_t i = 0; i < c->nlimits; ++i) {
    *index = i;
    if (setrlimit(c->limits[i].res, &c->limits[i].rl) != 0) return -1;
  }
  *step = MPROC__POSIX_STEP_SETGROUPS;
  if (c->set_groups && setgroups(c->ngroups, c->groups) != 0) return -1;
  if (c->drop_groups && setgroups(0, NULL) != 0 && errno != EPERM) return -1;
  *step = MPROC__POSIX_STEP_SETGID;
  if (c->set_gid && setregid(c->gid, c->gid) != 0) return -1;
  *step = MPROC__POSIX_STEP_SETUID;
  if (c->set_uid && setreuid(c->uid, c->uid) != 0) return -1;
  return 0;
}

/* ---- the parent's word on a refusal -------------------------------------------------------------- */

static void limit_text(rlim_t v, char *buf, size_t n) {
  if (v == RLIM_INFINITY)
    snprintf(buf, n, "infinity");
  else
    snprintf(buf, n, "%llu", (unsigned long long)v);
}

int mproc__posix_creds_fail(const mproc__spawn_req *req, const mproc__posix_creds *c, const char *path, int step,
                            size_t index, int err) {
  switch (step) {
    case MPROC__POSIX_STEP_SETRLIMIT: {
      char soft[32] = "?", hard[32] = "?";
      const char *name = "a resource limit";
      if (index < c->nlimits) {
        limit_text(c->limits[index].rl.rlim_cur, soft, sizeof soft);
        limit_text(c->limits[index].rl.rlim_max, hard, sizeof hard);
        name = limit_name(c->limits[index].kind);
      }
      return mproc__fail_os(err == EINVAL ? MPROC_EINVAL : 0, err,
                            "spawn '%s': the child could not set rlimits[%zu], %s, to soft %s, hard %s%s", path, index,
                            name, soft, hard,
                            err == EPERM ? " (raising a hard limit takes root or CAP_SYS_RESOURCE)" : "");
    }
    case MPROC__POSIX_STEP_SETGROUPS:
      return mproc__fail_os(0, err, "spawn '%s': the child could not set its supplementary groups (%zu of them)%s",
                            path, c->set_groups ? c->ngroups : (size_t)0,
                            err == EPERM ? " (that takes root or CAP_SETGID)" : "");
    case MPROC__POSIX_STEP_SETGID:
      return mproc__fail_os(0, err, "spawn '%s': the child could not change its group to %lu%s%s%s%s", path,
                            (unsigned long)c->gid, req->group ? " ('" : "", req->group ? req->group : "",
                            req->group ? "')" : " (the primary group of its user)",
                            err == EPERM ? ": another group takes root or CAP_SETGID" : "");
    case MPROC__POSIX_STEP_SETUID:
      return mproc__fail_os(0, err, "spawn '%s': the child could not change its user to %lu ('%s')%s", path,
                            (unsigned long)c->uid, req->user ? req->user : "?",
                            err == EPERM ? ": another user takes root or CAP_SETUID" : "");
    default:
      return mproc__fail_os(0, err, "spawn '%s': the child failed before running the program", path);
  }
}
