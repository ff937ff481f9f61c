/* POSIX PAL: listeners and clients (pal.h, "listeners and clients"): Unix-domain stream sockets (paths,
 * and Linux's abstract namespace) and TCP over IPv4 and IPv6. Accepted and connected sockets are plain
 * blocking descriptors, so the connection functions of conn.c (read, writev, poll) serve them as they are.
 * Linux is tested here; the BSD and macOS branches (getpeereid, accept without accept4, no abstract
 * namespace, no /proc/net/tcp) follow their documentation and are untested. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* accept4, SO_PEERCRED's struct ucred */
#endif

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../pal.h"
#include "posix.h"

struct mproc__listen {
  int fd;
  int family;
  char *path; /* a path socket we bound (removed by close while it is still ours), or NULL */
  dev_t dev;  /* ... the file we bound */
  ino_t ino;
  char *dir; /* the generated directory (removed by close), or NULL */
};

/* ---- addresses -------------------------------------------------------------------------------- */

/* A Unix socket address for name (a path or "@name"): its length, or an error. */
static int unix_addr(const char *name, struct sockaddr_un *sa, socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  size_t n = strlen(name);
  if (name[0] == '@') {
#ifdef __linux__
    if (n > sizeof sa->sun_path) /* the leading NUL takes the '@''s place */
      return mproc__fail(MPROC_EINVAL, "the abstract socket name '%s' is longer than %zu bytes", name,
                         sizeof sa->sun_path - 1);
    memcpy(sa->sun_path + 1, name + 1, n - 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n); /* an abstract name has no terminating NUL */
    return 0;
#else
    return mproc__fail(MPROC_ENOTSUP, "'%s': the abstract socket namespace is Linux's alone", name);
#endif
  }
  if (n >= sizeof sa->sun_path)
    return mproc__fail(MPROC_EINVAL, "the socket path '%s' is longer than %zu bytes", name, sizeof sa->sun_path - 1);
  memcpy(sa->sun_path, name, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

/* An address as a string, malloc'ed: "@name" or the path of a Unix socket ("" when it has none),
 * "host:port" (IPv4) or "[host]:port" (IPv6). NULL with MPROC_ENOMEM set. */
static char *addr_string(const struct sockaddr *sa, socklen_t len) {
  char buf[sizeof(struct sockaddr_un) + 80] = "";
  if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)sa;
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n > sizeof un->sun_path) n = sizeof un->sun_path;
    if (n > 0 && un->sun_path[0] == '\0') { /* abstract: up to the length (or a NUL inside it) */
      buf[0] = '@';
      memcpy(buf + 1, un->sun_path + 1, n - 1);
      buf[n] = '\0';
    } else {
      memcpy(buf, un->sun_path, n);
      buf[n] = '\0';
    }
  } else {
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "0";
    getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(buf, sizeof buf, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
  }
  return mproc__strdup(buf);
}

/* The addresses of a TCP host and port (getaddrinfo; passive: for listening). */
static int resolve(const mproc__addr *a, bool passive, struct addrinfo **res) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = a->family == MPROC__FAMILY_INET6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  char port[16];
  snprintf(port, sizeof port, "%u", a->port);
  int e = getaddrinfo(a->name[0] ? a->name : NULL, port, &hints, res);
  if (e == 0) return 0;
  if (e == EAI_SYSTEM) return mproc__fail_os(0, errno, "resolving '%s'", a->name);
  return mproc__fail(e == EAI_NONAME || e == EAI_FAIL || e == EAI_AGAIN ? MPROC_ENOENT : MPROC_ESYS,
                     "resolving '%s' (%s): %s", a->name, a->family == MPROC__FAMILY_INET6 ? "IPv6" : "IPv4",
                     gai_strerror(e));
}

/* A stream socket of the family, close-on-exec and non-blocking. */
static int new_socket(int domain, int *fd) {
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
  *fd = socket(domain, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
#else
  *fd = socket(domain, SOCK_STREAM, 0);
  if (*fd >= 0) {
    fcntl(*fd, F_SETFD, FD_CLOEXEC);
    fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) | O_NONBLOCK);
  }
#endif
  if (*fd < 0) return mproc__fail_os(0, errno, "socket");
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(*fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return 0;
}

/* A socket for a connection: blocking (the connection functions wait with poll themselves), and TCP
 * without Nagle's delay (a message's header and payload may go in two writes). */
static void make_conn(int fd, int domain) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (domain != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

int mproc__pal_listen_default_family(void) { return MPROC__FAMILY_UNIX; }

/* ---- listening -------------------------------------------------------------------------------- */

/* A new directory only this user can open (mode 0700) under $TMPDIR or /tmp, and a socket name in it. */
static int generate_path(char **dir_out, char **path_out) {
  const char *bases[2] = {getenv("TMPDIR"), "/tmp"};
  unsigned char r[4];
  int rc = mproc__pal_random(r, sizeof r);
  if (rc) return rc;
  for (int i = 0; i < 2; ++i) {
    if (!bases[i] || !bases[i][0]) continue;
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    /* room for "/mproc-XXXXXX" and "/listener-xxxxxxxx" in a socket address */
    if (strlen(bases[i]) + 13 + 18 >= sizeof dir) continue;
    snprintf(dir, sizeof dir, "%s/mproc-XXXXXX", bases[i]);
    if (!mkdtemp(dir)) {
      if (i == 0) continue;
      return mproc__fail_os(0, errno, "listener: making a private directory in %s", bases[i]);
    }
    char path[sizeof dir + 32]; /* fits a socket address: the length was checked above */
    snprintf(path, sizeof path, "%s/listener-%02x%02x%02x%02x", dir, r[0], r[1], r[2], r[3]);
    *dir_out = mproc__strdup(dir);
    *path_out = mproc__strdup(path);
    if (*dir_out && *path_out) return 0;
    rmdir(dir);
    free(*dir_out);
    free(*path_out);
    return MPROC_ENOMEM;
  }
  return mproc__fail(MPROC_EINVAL, "listener: $TMPDIR is too long for a socket path; and /tmp will not do either");
}

void mproc__pal_listen_close(mproc__listen *l) {
  if (!l) return;
  if (l->fd >= 0) close(l->fd);
  struct stat st;
  if (l->path && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) unlink(l->path);
  if (l->dir) rmdir(l->dir);
  free(l->path);
  free(l->dir);
  free(l);
}

int mproc__pal_listen(const mproc__addr *a, int backlog, mproc__listen **out, char **bound) {
  *out = NULL;
  *bound = NULL;
  if (a->family == MPROC__FAMILY_PIPE)
    return mproc__fail(MPROC_ENOTSUP, "listener: named pipes (AF_PIPE) are Windows's; use a Unix socket here");
  mproc__listen *l = (mproc__listen *)calloc(1, sizeof *l);
  if (!l) return mproc__fail(MPROC_ENOMEM, "listener: out of memory");
  l->fd = -1;
  l->family = a->family;
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  struct addrinfo *ai = NULL;
  int rc = 0;
  const char *name = a->name;
  if (a->family == MPROC__FAMILY_UNIX) {
    if (!name && (rc = generate_path(&l->dir, &l->path)) == 0) name = l->path;
    if (!rc && name[0] == '@' && name[1] == '\0') { /* the kernel picks an abstract name (autobind) */
      memset(&ss, 0, sizeof ss);
      ss.ss_family = AF_UNIX;
      sslen = (socklen_t)sizeof(sa_family_t);
    } else if (!rc) {
      rc = unix_addr(name, (struct sockaddr_un *)(void *)&ss, &sslen);
    }
  } else {
    rc = resolve(a, true, &ai);
    if (!rc) {
      memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
      sslen = (socklen_t)ai->ai_addrlen;
      freeaddrinfo(ai);
    }
  }
  if (!rc) rc = new_socket(ss.ss_family, &l->fd);
  int one = 1;
  if (!rc && a->family != MPROC__FAMILY_UNIX) setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (!rc && a->family == MPROC__FAMILY_INET6) setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  const char *shown = a->family == MPROC__FAMILY_UNIX ? name : a->name;
  if (!rc && bind(l->fd, (struct sockaddr *)&ss, sslen) != 0)
    rc = mproc__fail_os(errno == EADDRINUSE ? MPROC_EEXIST : 0, errno, "listener: bind to '%s'", shown ? shown : "");
  if (!rc && a->family == MPROC__FAMILY_UNIX && name[0] != '@') { /* ours to remove at close */
    struct stat st;
    if (!l->path && !(l->path = mproc__strdup(name))) rc = MPROC_ENOMEM;
    if (!rc && lstat(l->path, &st) == 0) {
      l->dev = st.st_dev;
      l->ino = st.st_ino;
    }
  }
  if (!rc && listen(l->fd, backlog) != 0) rc = mproc__fail_os(0, errno, "listener: listen on '%s'", shown);
  sslen = sizeof ss;
  if (!rc && getsockname(l->fd, (struct sockaddr *)&ss, &sslen) != 0)
    rc = mproc__fail_os(0, errno, "listener: getsockname");
  if (!rc && !(*bound = addr_string((struct sockaddr *)&ss, sslen))) rc = MPROC_ENOMEM;
  if (!rc && a->family == MPROC__FAMILY_UNIX && name[0] != '@' && strcmp(*bound, name) != 0) {
    free(*bound); /* the path as given (a system may report it shortened or not at all) */
    if (!(*bound = mproc__strdup(name))) rc = MPROC_ENOMEM;
  }
  if (rc) {
    free(*bound);
    *bound = NULL;
    mproc__pal_listen_close(l);
    return rc;
  }
  *out = l;
  return 0;
}

void mproc__pal_listen_wait_item(const mproc__listen *l, mproc__wait_item *it) {
  it->h = l->fd;
  it->kind = MPROC__WAIT_CONN;
}

int mproc__pal_listen_accept(mproc__listen *l, mproc_os_handle *h, char **peer) {
  *h = MPROC_NO_HANDLE;
  *peer = NULL;
  struct sockaddr_storage ss;
  for (;;) {
    socklen_t len = sizeof ss;
#if defined(__linux__)
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
#else
    int fd = accept(l->fd, (struct sockaddr *)&ss, &len);
    if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue; /* a client that left while it waited */
      if (errno == EAGAIN || errno == EWOULDBLOCK) return MPROC_ETIMEDOUT;
      return mproc__fail_os(0, errno, "listener: accept");
    }
    if (len == 0) ss.ss_family = AF_UNIX; /* an unnamed peer: some systems give no address at all */
    make_conn(fd, ss.ss_family);          /* (BSD and macOS: the socket inherits O_NONBLOCK) */
    if (!(*peer = addr_string((struct sockaddr *)&ss, len))) {
      close(fd);
      return MPROC_ENOMEM;
    }
    *h = fd;
    return 0;
  }
}

/* ---- who the peer is ----------------------------------------------------------------------------- */

#ifdef __linux__
/* An address and port as /proc/net/tcp prints it: each 32-bit word of the address as the machine stores
 * it, in hex, then the port in host order. */
static void proc_addr(const struct sockaddr *sa, char *buf, size_t cap) {
  size_t at = 0;
  const unsigned char *b;
  size_t words;
  unsigned port;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
    b = s6->sin6_addr.s6_addr;
    words = 4;
    port = ntohs(s6->sin6_port);
  } else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
    b = (const unsigned char *)&s4->sin_addr;
    words = 1;
    port = ntohs(s4->sin_port);
  }
  for (size_t i = 0; i < words; ++i) {
    uint32_t w;
    memcpy(&w, b + 4 * i, 4);
    at += (size_t)snprintf(buf + at, cap - at, "%08X", (unsigned)w);
  }
  snprintf(buf + at, cap - at, ":%04X", port);
}

/* The owner of the local TCP socket whose address is `local` and whose peer is `remote`, as the kernel
 * lists it: 1 with *uid, 0 when no such socket lives here (its end is on another machine, or gone). */
static int tcp_owner(const struct sockaddr *local, const struct sockaddr *remote, uid_t *uid) {
  char want_l[64], want_r[64];
  proc_addr(local, want_l, sizeof want_l);
  proc_addr(remote, want_r, sizeof want_r);
  FILE *f = fopen(local->sa_family == AF_INET6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
  if (!f) return 0;
  char line[512];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    char l_addr[64], r_addr[64];
    unsigned st = 0, owner = 0;
    if (sscanf(line, " %*u: %63s %63s %x %*s %*s %*s %u", l_addr, r_addr, &st, &owner) != 4) continue;
    if (strcmp(l_addr, want_l) != 0 || strcmp(r_addr, want_r) != 0) continue;
    if (st == 6) break; /* TIME_WAIT: the socket has gone, its owner with it (listed as 0) */
    *uid = (uid_t)owner;
    found = 1;
  }
  fclose(f);
  return found;
}
#endif

int mproc__pal_peer_same_user(const mproc__listen *l, mproc_os_handle h) {
  if (l->family == MPROC__FAMILY_UNIX) {
#if defined(SO_PEERCRED) && defined(__linux__)
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt((int)h, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
      return mproc__fail_os(0, errno, "listener: the peer's credentials (SO_PEERCRED)");
    return cred.uid == geteuid() ? 1 : 0;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid((int)h, &uid, &gid) != 0) return mproc__fail_os(0, errno, "listener: getpeereid");
    return uid == geteuid() ? 1 : 0;
#endif
  }
#ifdef __linux__
  /* The peer's socket, if it is on this machine, is listed with our address as its peer. */
  struct sockaddr_storage mine, theirs;
  socklen_t ml = sizeof mine, tl = sizeof theirs;
  if (getsockname((int)h, (struct sockaddr *)&mine, &ml) != 0 ||
      getpeername((int)h, (struct sockaddr *)&theirs, &tl) != 0)
    return mproc__fail_os(0, errno, "listener: the addresses of an accepted connection");
  uid_t uid = 0;
  if (tcp_owner((struct sockaddr *)&theirs, (struct sockaddr *)&mine, &uid)) return uid == geteuid() ? 1 : 0;
#endif
  return mproc__fail(MPROC_ENOTSUP, "listener: the peer's user cannot be told (another machine?)");
}

/* ---- connecting ---------------------------------------------------------------------------------- */

/* Connect fd to sa, waiting up to the deadline. 0, or an error naming `shown`. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline, const char *shown) {
  struct timespec pause = {0, 1000000}; /* a full Unix backlog: try again, 1 ms then longer */
  for (;;) {
    if (connect(fd, sa, len) == 0) return 0;
    int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN && sa->sa_family == AF_UNIX) { /* the listener's backlog is full (Linux) */
      if (mproc__ms_until(deadline) == 0)
        return mproc__fail(MPROC_ETIMEDOUT, "client: '%s' accepted no connection before the timeout", shown);
      nanosleep(&pause, NULL);
      if (pause.tv_nsec < 64000000) pause.tv_nsec *= 2;
      continue;
    }
    if (e == EINPROGRESS) {
      int rc = mproc__posix_wait_fd(fd, POLLOUT, deadline);
      if (rc == MPROC_ETIMEDOUT)
        return mproc__fail(rc, "client: connecting to '%s' did not finish before the timeout", shown);
      if (rc) return rc;
      socklen_t el = sizeof e;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
      if (e == 0) return 0;
    }
    if (e == ECONNREFUSED || e == ENOENT)
      return mproc__fail_os(MPROC_ENOENT, e, "client: nothing listens at '%s'", shown);
    return mproc__fail_os(0, e, "client: connect to '%s'", shown);
  }
}

int mproc__pal_connect(const mproc__addr *a, int64_t deadline, mproc_os_handle *h) {
  *h = MPROC_NO_HANDLE;
  if (a->family == MPROC__FAMILY_PIPE)
    return mproc__fail(MPROC_ENOTSUP, "client: named pipes (AF_PIPE) are Windows's; use a Unix socket here");
  int fd = -1, rc;
  if (a->family == MPROC__FAMILY_UNIX) {
    struct sockaddr_un sa;
    socklen_t len = 0;
    rc = unix_addr(a->name, &sa, &len);
    if (!rc) rc = new_socket(AF_UNIX, &fd);
    if (!rc) rc = connect_fd(fd, (struct sockaddr *)&sa, len, deadline, a->name);
  } else {
    struct addrinfo *ai = NULL;
    rc = resolve(a, false, &ai);
    char shown[300];
    snprintf(shown, sizeof shown, a->family == MPROC__FAMILY_INET6 ? "[%s]:%u" : "%s:%u", a->name, a->port);
    for (struct addrinfo *p = ai; p && !rc; p = p->ai_next) { /* each address of the host, until one answers */
      if ((rc = new_socket(p->ai_family, &fd)) != 0) break;
      rc = connect_fd(fd, p->ai_addr, (socklen_t)p->ai_addrlen, deadline, shown);
      if (!rc) break;
      close(fd);
      fd = -1;
      if (rc == MPROC_ETIMEDOUT || !p->ai_next) break;
      rc = 0;
    }
    if (ai) freeaddrinfo(ai);
  }
  if (rc) {
    if (fd >= 0) close(fd);
    return rc;
  }
  make_conn(fd, a->family == MPROC__FAMILY_UNIX ? AF_UNIX : AF_INET);
  *h = fd;
  return 0;
}
