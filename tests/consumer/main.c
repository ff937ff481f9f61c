/* Consumer check: a program built against an installed mproc (CMake package or pkg-config) links,
 * loads the library (the .so / DLL when shared) and gets sane answers from it. Exits 0 on success. */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int failures;

static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "consumer: FAILED: %s\n", what);
    failures++;
  }
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);

  const char *version = mproc_version_string();
  expect(version != NULL && strcmp(version, MPROC_VERSION_STRING) == 0,
         "mproc_version_string() matches the header's MPROC_VERSION_STRING");
  expect(mproc_version() == MPROC_VERSION_NUMBER, "mproc_version() matches MPROC_VERSION_NUMBER");

  int cpus = mproc_cpu_count();
  expect(cpus >= 1, "mproc_cpu_count() >= 1");

  const char *timedout = mproc_strerror(MPROC_ETIMEDOUT);
  expect(timedout != NULL && strncmp(timedout, "MPROC_ETIMEDOUT", 15) == 0,
         "mproc_strerror(MPROC_ETIMEDOUT) names the code");
  const char *unknown = mproc_strerror(12345);
  expect(unknown != NULL && strstr(unknown, "unknown") != NULL, "mproc_strerror(12345) says unknown");

  /* authkeys: HMAC from the platform's crypto (POSIX: OpenSSL's libcrypto, which the package's CMake
   * config and pkg-config file carry for a static link; Windows: BCrypt, loaded at run time). A listener
   * with a key needs it, and a TCP listener the sockets. */
  mproc_listener *l = NULL;
  int rc =
      mproc_listener_create(&l, &(mproc_listener_opts){.address = "127.0.0.1:0", .authkey = "k", .authkey_size = 1});
  expect(rc == 0, "a TCP listener with an authkey");
  mproc_connection *c = NULL;
  expect(rc != 0 || mproc_listener_accept(l, 0, &c) == MPROC_ETIMEDOUT, "accept without a client: MPROC_ETIMEDOUT");
  mproc_listener_destroy(l);

  if (failures) return 1;
  printf("consumer ok: mproc %s, %d CPUs, \"%s\"\n", version ? version : "?", cpus, timedout);
  return 0;
}
