// The seam for handing objects to a child (src/handable.h): a type of the test's own, carrying one OS
// handle and some bytes, is handed to a child under every start method (fork, spawn, forkserver on POSIX;
// spawn on Windows) beside a connection, and rebuilt there by its import function alone: the process
// module knows nothing of it. White-box (internal API).
#include <cstring>
#include <string>

extern "C" {
#include "connection_internal.h"
#include "handable.h"
#include "pal.h"
#include "process/process_internal.h"
}
#include "test_util.h"

using mproc_test::kWindows;

namespace {

// The test type: one handle to write on, and a label.
struct TestObj {
  mproc_os_handle h;
  char label[32];
};

int test_export(const void *obj, mproc_os_handle *handles, size_t *nhandles, mproc__buf *bytes) {
  const TestObj *t = (const TestObj *)obj;
  handles[0] = t->h;
  *nhandles = 1;
  return mproc__buf_append(bytes, t->label, strlen(t->label));
}

int test_import(const void *bytes, size_t len, const mproc_os_handle *handles, size_t nhandles, void **obj) {
  if (nhandles != 1 || len >= sizeof(TestObj::label)) return mproc__fail(MPROC_ESYS, "test object: malformed");
  TestObj *t = new TestObj{};
  t->h = handles[0];
  memcpy(t->label, bytes, len);
  *obj = t;
  return 0;
}

const mproc__handable_type k_test_type = {0x7E57, "test object", test_export, test_import};
// Registered in every process that runs this program, before main (and so before the guard): the
// parent, a spawned child, the fork server.
const int g_registered = mproc__handable_register(&k_test_type);

// In the child: the connection and the test object arrive in the order handed; the object's label goes
// back on its own handle, the connection's message on the connection.
int t_use_objects(const mproc_args *a) {
  if (a->connection_count != 1 || a->object_count != 2) return 10;
  if (a->objects[0] != a->connections[0]) return 11;
  const TestObj *t = (const TestObj *)a->objects[1];
  std::string reply = std::string("label:") + t->label;
  if (mproc__pal_conn_send(t->h, reply.data(), reply.size(), nullptr, 0) != 0) return 12;
  return mproc_connection_send_bytes(a->connections[0], "conn", 4, 0, MPROC_ALL) == 0 ? 0 : 13;
}

class Handable : public ::testing::TestWithParam<mproc_start_method> {};

TEST_P(Handable, ATypeOfItsOwnIsRebuiltInTheChildUnderEveryStartMethod) {
  ASSERT_EQ(g_registered, 0);
  mproc_os_handle mine, theirs;
  ASSERT_EQ(mproc__pal_conn_pair(true, &mine, &theirs), 0) << mproc_last_error();
  TestObj obj{theirs, "hello from the parent"};
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_connection *hand[] = {b};
  mproc_process *p = nullptr;
  mproc_process_opts o{};
  o.target = t_use_objects;
  o.connections = hand;
  o.connection_count = 1;
  o.start_method = GetParam();
  ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
  ASSERT_EQ(mproc__process_hand(p, &k_test_type, &obj), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  EXPECT_EQ(mproc__process_hand(p, &k_test_type, &obj), MPROC_ESTATE); // too late once started
  char buf[64];
  std::string got;
  while (got.size() < strlen("label:hello from the parent")) {
    size_t n = 0;
    ASSERT_EQ(mproc__pal_conn_recv(mine, buf, sizeof buf, mproc__deadline_from_timeout(60000), &n), 0);
    ASSERT_GT(n, 0u) << "end of file before the label";
    got.append(buf, n);
  }
  EXPECT_EQ(got, "label:hello from the parent");
  char *m = nullptr;
  size_t len = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(a, 0, 60000, &m, &len), 0) << mproc_last_error();
  EXPECT_EQ(std::string(m, len), "conn");
  mproc_free(m);
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
  mproc__pal_close(mine);
  mproc__pal_close(theirs);
}

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}

INSTANTIATE_TEST_SUITE_P(Methods, Handable, ::testing::ValuesIn(methods()),
                         [](const ::testing::TestParamInfo<mproc_start_method> &i) {
                           return std::string(mproc_start_method_name(i.param));
                         });

// The table of types: the library's own and registered ones, ids unique and never 0.
TEST(HandableTypes, RegistrationRules) {
  EXPECT_EQ(mproc__handable_find(0x7E57), &k_test_type);
  EXPECT_EQ(mproc__handable_find(1), &mproc__connection_handable);
  EXPECT_EQ(mproc__handable_find(0xBAD), nullptr);
  EXPECT_EQ(mproc__handable_register(&k_test_type), MPROC_EINVAL); // taken
  mproc__handable_type zero = {0, "zero", test_export, test_import};
  EXPECT_EQ(mproc__handable_register(&zero), MPROC_EINVAL);
}

} // namespace
