/* libFuzzer target: the bootstrap parser the main guard runs on what a parent sent (src/bootstrap.c).
 * Every input must parse or be refused (MPROC_ESYS) without a crash, a leak or undefined behaviour;
 * an accepted message must re-encode to exactly the input bytes (the parser is strict: nothing
 * ignored, nothing left over). See docs/FUZZING.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "mproc/process.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A copy of exactly `size` bytes: ASan sees any read past the end of the message. */
  uint8_t *msg = (uint8_t *)malloc(size ? size : 1);
  if (!msg) return 0;
  if (size) memcpy(msg, data, size);
  mproc__boot b;
  int rc = mproc__boot_parse(msg, size, &b);
  if (rc == 0) {
    if (b.ref_len && (const uint8_t *)b.ref < msg) __builtin_trap();
    if (b.arg_len && (const uint8_t *)b.arg + b.arg_len > msg + size) __builtin_trap();
    if (b.authkey_len > MPROC_AUTHKEY_MAX || (b.authkey_len && (const uint8_t *)b.authkey + b.authkey_len > msg + size))
      __builtin_trap();
    for (size_t i = 0; i < b.nobjs; ++i) { /* each object's handles lie in the list, none of them none */
      if (b.objs[i].type == 0 || b.objs[i].count > MPROC__HANDABLE_MAX_HANDLES) __builtin_trap();
      if (b.objs[i].first + b.objs[i].count > b.nhandles) __builtin_trap();
      if (b.objs[i].len && (const uint8_t *)b.objs[i].bytes + b.objs[i].len > msg + size) __builtin_trap();
    }
    for (size_t i = 0; i < b.nhandles; ++i)
      if (b.handles[i] == MPROC_NO_HANDLE) __builtin_trap();
    mproc__buf out = {0};
    if (mproc__boot_encode(&b, &out) == 0 && (out.len != size || (size && memcmp(out.data, msg, size) != 0)))
      __builtin_trap(); /* accepted, yet not what the encoder would have sent */
    mproc__buf_free(&out);
    mproc__boot_free(&b);
  } else if (rc != MPROC_ESYS && rc != MPROC_ENOMEM) {
    __builtin_trap();
  } else if (b.name || b.ident || b.parent_name || b.objs || b.handles) {
    __builtin_trap(); /* a refused message leaves nothing to free */
  }
  free(msg);
  return 0;
}
