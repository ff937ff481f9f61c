/* Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/{bootstrap,frames}/<name>.
 *   fuzz_make_seeds <corpus dir>
 * Valid inputs come from the library itself (mproc__boot_encode; frames from
 * mproc_connection_send_bytes, read raw off the receiving handle), hostile ones are edits of them.
 * The committed seeds are its output; run it again only to change them (docs/FUZZING.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "connection_internal.h"
#include "pal.h"
#include "wire.h"

static const char *g_dir;

static void write_seed(const char *sub, const char *name, const void *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/%s", g_dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
    fprintf(stderr, "make_seeds: cannot write %s\n", path);
    exit(1);
  }
  if (strcmp(sub, "bootstrap") == 0) { /* valid-* parse, bad-* are refused */
    mproc__boot b;
    int rc = mproc__boot_parse(p, n, &b);
    if ((rc == 0) != (strncmp(name, "valid-", 6) == 0)) {
      fprintf(stderr, "make_seeds: %s: mproc__boot_parse gives %d: %s\n", name, rc, mproc_last_error());
      exit(1);
    }
    if (rc == 0) mproc__boot_free(&b);
  }
}

/* ---- bootstrap --------------------------------------------------------------------------------- */

static mproc__buf encode(const mproc__boot *b) {
  mproc__buf out = {0};
  if (mproc__boot_encode(b, &out) != 0) exit(1);
  return out;
}

static void boot_seeds(void) {
  const char *sub = "bootstrap";
  mproc__boot empty = {0};
  mproc__buf m = encode(&empty);
  write_seed(sub, "valid-empty", m.data, m.len);
  mproc__buf_free(&m);

  static const char ref[] = "/usr/local/bin/app\0\x10\x20\x30\x40\x50\x60\x70\x80worker_main";
  static const char arg[] = "\x01\x02\x03 the argument bytes";
  /* three objects: a duplex connection end (three handles), a link (one handle for both ways), and an
   * object of another type with two handles */
  static const unsigned char c3[4] = {0, 1, 2, 0}, c1[4] = {0, 0, 0xFF, 0};
  struct mproc__boot_obj objs[3] = {{1, c3, sizeof c3, 0, 3}, {1, c1, sizeof c1, 3, 1}, {7, "x", 1, 4, 2}};
  mproc_os_handle handles[6] = {3, 4, 5, 6, 7, 8};
  mproc__boot b = {.ref = ref,
                   .ref_len = sizeof ref - 1,
                   .arg = arg,
                   .arg_len = sizeof arg - 1,
                   .name = "Process-1",
                   .ident = "1:2",
                   .parent_name = "MainProcess",
                   .authkey = "0123456789abcdef0123456789abcdef",
                   .authkey_len = 32,
                   .parent_pid = 4242,
                   .flags = MPROC__BOOT_DAEMON | MPROC__BOOT_MAIN_THREAD,
                   .nobjs = 3,
                   .objs = objs,
                   .nhandles = 6,
                   .handles = handles};
  mproc__buf v = encode(&b);
  write_seed(sub, "valid-3objs", v.data, v.len);

  mproc__boot k = b;
  k.flags = MPROC__BOOT_KILL_ON_PARENT_DEATH;
  k.nobjs = 1;
  k.nhandles = 3;
  k.arg_len = 0;
  k.parent_pid = -1;
  k.authkey_len = 0;
  m = encode(&k);
  write_seed(sub, "valid-1obj", m.data, m.len);
  mproc__buf_free(&m);

  /* hostile: edits of valid-3objs. Offsets: header 8, ref at 8 (len) + 16, arg, name ... */
  size_t ref_at = 8, arg_at = ref_at + 8 + b.ref_len, name_at = arg_at + 8 + b.arg_len;
  size_t key_at = name_at + 8 + 9 + 8 + 3 + 8 + 11, pid_at = key_at + 8 + 32, flags_at = pid_at + 8,
         n_at = flags_at + 8, o_at = n_at + 8;
  /* the first object: type, bytes (8 + 4), handle count, three handles; the second starts after it */
  size_t count_at = o_at + 8 + 8 + 4, h_at = count_at + 8, o2_at = h_at + 24, h2_at = o2_at + 8 + 8 + 4 + 8;
  unsigned char *e = (unsigned char *)malloc(v.len + 1);
  if (!e) exit(1);
#define EDIT(name, stmt)            \
  do {                              \
    memcpy(e, v.data, v.len);       \
    size_t elen = v.len;            \
    stmt;                           \
    write_seed(sub, name, e, elen); \
  } while (0)
  EDIT("bad-truncated-half", elen = v.len / 2);
  EDIT("bad-truncated-last-byte", elen = v.len - 1);
  EDIT("bad-trailing-byte", (e[v.len] = 0, elen = v.len + 1));
  EDIT("bad-version", e[0] = 2);
  EDIT("bad-ref-len-huge", mproc__wire_put_le64(e + ref_at, UINT64_MAX));
  EDIT("bad-arg-len-past-end", mproc__wire_put_le64(e + arg_at, v.len));
  EDIT("bad-name-nul", e[name_at + 8 + 3] = 0);
  EDIT("bad-authkey-len-past-end", mproc__wire_put_le64(e + key_at, v.len));
  EDIT("bad-flags", mproc__wire_put_le64(e + flags_at, 8));
  EDIT("bad-obj-count-huge", mproc__wire_put_le64(e + n_at, UINT64_MAX / 24 + 1));
  EDIT("bad-obj-count-one-more", mproc__wire_put_le64(e + n_at, 4));
  EDIT("bad-type-zero", mproc__wire_put_le64(e + o_at, 0));
  EDIT("bad-handle-count", mproc__wire_put_le64(e + count_at, MPROC__HANDABLE_MAX_HANDLES + 1));
  EDIT("bad-handle-twice", mproc__wire_put_le64(e + h2_at, 5));
  EDIT("bad-handle-range", mproc__wire_put_le64(e + h_at, (uint64_t)1 << 40));
  EDIT("bad-handle-none", mproc__wire_put_le64(e + h_at, UINT64_MAX));
#undef EDIT
  free(e);
  mproc__buf_free(&v);
}

/* ---- frames: 4 option bytes (see fuzz_frames.c), then the stream ------------------------------ */

/* What send_bytes puts on the wire for these messages (read raw off the receiving end). */
static mproc__buf framed(const char *const *msgs, const size_t *lens, size_t n) {
  mproc_connection *a = NULL, *b = NULL;
  if (mproc_pipe(true, &a, &b) != 0) exit(1);
  for (size_t i = 0; i < n; ++i)
    if (mproc_connection_send_bytes(b, msgs[i], lens[i], 0, MPROC_ALL) != 0) exit(1);
  mproc_connection_destroy(b);
  mproc__buf out = {0};
  for (;;) {
    char buf[4096];
    size_t got = 0;
    if (mproc__pal_conn_recv(a->e.rd, buf, sizeof buf, INT64_MAX, &got) != 0) exit(1);
    if (!got) break;
    if (mproc__buf_append(&out, buf, got) != 0) exit(1);
  }
  mproc_connection_destroy(a);
  return out;
}

static void frame_seed(const char *name, unsigned opt, unsigned sizes, const void *bulk, size_t bulk_len,
                       const void *stream, size_t stream_len) {
  mproc__buf s = {0};
  unsigned char h[4] = {(unsigned char)opt, (unsigned char)sizes, (unsigned char)bulk_len,
                        (unsigned char)(bulk_len >> 8)};
  if (mproc__buf_append(&s, h, 4) || mproc__buf_append(&s, bulk, bulk_len) || mproc__buf_append(&s, stream, stream_len))
    exit(1);
  write_seed("frames", name, s.data, s.len);
  mproc__buf_free(&s);
}

static void frame_seeds(void) {
  static char big[3000];
  for (size_t i = 0; i < sizeof big; ++i) big[i] = (char)('a' + i % 26);
  const char *msgs[] = {"hello", "", big, "a second message", big};
  size_t lens[] = {5, 0, sizeof big, 16, 100};
  mproc__buf one = framed(msgs, lens, 1), several = framed(msgs, lens, 5);

  frame_seed("valid-one", 0, 0, NULL, 0, one.data, one.len);
  frame_seed("valid-several-alternate", 0, 5, NULL, 0, several.data, several.len);
  frame_seed("valid-several-into-poll", 2 | 4, 6, NULL, 0, several.data, several.len);
  frame_seed("valid-several-interleaved", 3 | 64, 7 | (3 << 3), NULL, 0, several.data, several.len);
  frame_seed("valid-maxlength-16-refused", 1 | (1 << 3), 0, NULL, 0, several.data, several.len);
  frame_seed("valid-into-too-small", 2, 2, NULL, 0, several.data, several.len);

  /* the long form: 0xFFFFFFFF, an 8-byte length, the payload */
  unsigned char lf[12 + 10] = {0xFF, 0xFF, 0xFF, 0xFF};
  mproc__wire_put_le64(lf + 4, 10);
  memcpy(lf + 12, "long form!", 10);
  frame_seed("valid-long-form", 0, 4, NULL, 0, lf, sizeof lf);
  /* the bulk mark: 0xFFFFFFFE and the length on the stream, the payload on the bulk handle */
  unsigned char bm[12 + 4] = {0xFE, 0xFF, 0xFF, 0xFF};
  mproc__wire_put_le64(bm + 4, 100);
  memcpy(bm + 12, "\x02\0\0\0", 4); /* then a small message follows on the stream */
  unsigned char bm2[4 + 2] = {2, 0, 0, 0, 'o', 'k'};
  mproc__buf bs = {0};
  if (mproc__buf_append(&bs, bm, 12) || mproc__buf_append(&bs, bm2, 6)) exit(1);
  frame_seed("valid-bulk-mark", 32 | 4, 5, big, 100, bs.data, bs.len);
  frame_seed("valid-bulk-mark-interleaved", 32 | 64 | 1, 2 | (1 << 3), big, 100, bs.data, bs.len);

  /* an object frame: 0xFFFFFFFD and the body's length on the stream, the body on the bulk handle (type 2,
   * an OS handle, naming one handle that never came: the receive drops it), then a small message */
  unsigned char om[12] = {0xFD, 0xFF, 0xFF, 0xFF};
  unsigned char body[41] = {2, 0, 0, 0, 1, 0, 0, 0};
  body[40] = 1; /* the handle's kind */
  mproc__wire_put_le64(om + 4, sizeof body);
  mproc__buf os = {0};
  if (mproc__buf_append(&os, om, 12) || mproc__buf_append(&os, bm2, 6)) exit(1);
  frame_seed("object-frame-without-its-handle", 32, 5, body, sizeof body, os.data, os.len);
  frame_seed("object-frame-interleaved", 32 | 64 | 2, 3 | (2 << 3), body, sizeof body, os.data, os.len);
  mproc__buf_free(&os);

  /* broken streams */
  frame_seed("bad-header-cut", 0, 0, NULL, 0, one.data, 2);
  frame_seed("bad-payload-cut", 0, 0, NULL, 0, one.data, one.len - 1);
  frame_seed("bad-long-form-header-cut", 0, 0, NULL, 0, lf, 9);
  mproc__wire_put_le64(lf + 4, (uint64_t)1 << 63);
  frame_seed("bad-long-form-too-long", 0, 0, NULL, 0, lf, sizeof lf);
  mproc__wire_put_le64(lf + 4, (uint64_t)1 << 40);
  frame_seed("bad-long-form-lies", 128, 3, NULL, 0, lf, sizeof lf);
  frame_seed("bad-bulk-payload-missing", 0, 7, NULL, 0, bm, 12);
  frame_seed("bad-bulk-payload-short", 32, 7, big, 50, bm, 12);
  unsigned char liar[8] = {0xFF, 0xFF, 0xFF, 0x7F, 'x', 'y', 'z', 'w'};
  frame_seed("bad-length-lies", 64, 1, NULL, 0, liar, sizeof liar);

  /* CPython's multiprocessing.connection frames (sizes bit 7): big-endian lengths, -1 + 8-byte length */
  unsigned char py[] = {0,    0,    0,    5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0,   0,   0xFF,
                        0xFF, 0xFF, 0xFF, 0, 0,   0,   0,   0,   0,   0, 3, 'e', 'n', 'd'};
  frame_seed("valid-cpython", 0, 128 | 5, NULL, 0, py, sizeof py);
  frame_seed("valid-cpython-interleaved", 3 | 64, 128 | 4 | (2 << 3), NULL, 0, py, sizeof py);
  unsigned char pyneg[] = {0x80, 0, 0, 0, 'x'};
  frame_seed("bad-cpython-negative-length", 0, 128, NULL, 0, pyneg, sizeof pyneg);
  frame_seed("bad-cpython-long-form-cut", 0, 128, NULL, 0, py + 13, 9);
  mproc__buf_free(&bs);
  mproc__buf_free(&one);
  mproc__buf_free(&several);
}

/* ---- handshakes: 1 option byte (see fuzz_handshake.c), then the peer's CPython frames --------------- */

/* Append one CPython frame (4-byte big-endian length) holding p[0..n). */
static void cpython_frame(mproc__buf *b, const void *p, size_t n) {
  unsigned char h[4];
  mproc__wire_put_be32(h, (uint32_t)n);
  if (mproc__buf_append(b, h, 4) != 0 || (n && mproc__buf_append(b, p, n) != 0)) exit(1);
}

static void handshake_seed(const char *name, unsigned opt, const char *const *msgs, const size_t *lens, size_t n) {
  mproc__buf b = {0};
  unsigned char o = (unsigned char)opt;
  if (mproc__buf_append(&b, &o, 1) != 0) exit(1);
  for (size_t i = 0; i < n; ++i) cpython_frame(&b, msgs[i], lens[i]);
  write_seed("handshake", name, b.data, b.len);
  mproc__buf_free(&b);
}

static void handshake_seeds(void) {
  /* what a listener sends first (40 bytes after the digest's name), then its verdict */
  static const char ch256[] = "#CHALLENGE#{sha256}0123456789012345678901234567890123456789";
  static const char ch3[] = "#CHALLENGE#{sha3_384}0123456789012345678901234567890123456789";
  static const char legacy[] = "#CHALLENGE#01234567890123456789"; /* Python 3.11: 20 bytes, no name */
  static const char welcome[] = "#WELCOME#", failure[] = "#FAILURE#";
  static const char answer[] = "{sha256}01234567890123456789012345678901"; /* the right shape, a wrong digest */
  static const char md5[] = "0123456789012345";                            /* a legacy answer's shape */
  const char *m1[] = {ch256, welcome};
  const size_t l1[] = {sizeof ch256 - 1, sizeof welcome - 1};
  handshake_seed("answer-sha256-welcome", 3, m1, l1, 2);
  handshake_seed("client-sha256-welcome-then-answer", 1, (const char *[]){ch256, welcome, answer},
                 (const size_t[]){sizeof ch256 - 1, sizeof welcome - 1, sizeof answer - 1}, 3);
  handshake_seed("answer-sha3-failure", 3, (const char *[]){ch3, failure},
                 (const size_t[]){sizeof ch3 - 1, sizeof failure - 1}, 2);
  handshake_seed("answer-legacy-allowed", 3 | 4, (const char *[]){legacy, welcome},
                 (const size_t[]){sizeof legacy - 1, sizeof welcome - 1}, 2);
  handshake_seed("server-wrong-answer", 0, (const char *[]){answer}, (const size_t[]){sizeof answer - 1}, 1);
  handshake_seed("server-legacy-answer-allowed", 0 | 4, (const char *[]){md5}, (const size_t[]){sizeof md5 - 1}, 1);
  static char big[300]; /* longer than any handshake message may be */
  memset(big, '{', sizeof big);
  handshake_seed("deliver-too-long", 2, (const char *[]){big}, (const size_t[]){sizeof big}, 1);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_make_seeds <corpus dir (with bootstrap/, frames/ and handshake/)>\n");
    return 2;
  }
  g_dir = argv[1];
  boot_seeds();
  frame_seeds();
  handshake_seeds();
  return 0;
}
