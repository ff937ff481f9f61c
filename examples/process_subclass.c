/* Seed notes ("subclass with run()"):
 *   class Run(Process):
 *       def __init__(self, name): super().__init__(); self.name = name
 *       def run(self): print('%s running' % self.name); ...
 *   p1 = Run('anne'); ... p1.start()
 * The C idiom: the object's state is a plain struct passed as the argument bytes, and one target
 * function plays run(): it receives the struct and calls the "method". */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

typedef struct run_obj {
  char name[16];
  int work; /* how much to do */
} run_obj;

static void run_method(const run_obj *self) {
  long sum = 0;
  for (int i = 0; i < self->work * 100000; ++i) sum += i % 7;
  printf("%s running (pid %lld), result %ld\n", self->name, (long long)mproc_getpid(), sum);
  printf("%s running end\n", self->name);
}

static int run_target(const mproc_args *a) {
  run_obj self;
  if (a->size != sizeof self) return 2;
  memcpy(&self, a->data, sizeof self);
  run_method(&self);
  return 0;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  const char *names[] = {"anne", "alex", "ab", "hey"};
  mproc_process *ps[4];
  for (int i = 0; i < 4; ++i) {
    run_obj o = {"", i + 1};
    snprintf(o.name, sizeof o.name, "%s", names[i]);
    if (mproc_process_create(
            &ps[i], &(mproc_process_opts){.target = run_target, .arg = &o, .arg_size = sizeof o, .name = names[i]}) !=
            0 ||
        mproc_process_start(ps[i]) != 0) {
      fprintf(stderr, "start: %s\n", mproc_last_error());
      return 1;
    }
  }
  printf("main thread\n");
  fflush(stdout);
  for (int i = 0; i < 4; ++i) {
    mproc_process_join(ps[i], MPROC_INFINITE);
    mproc_process_destroy(ps[i]);
  }
  return 0;
}
