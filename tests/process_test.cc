// Processes running a C function: every test runs under each start method this platform has.
// Children report back over connections; nothing here waits with a sleep.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <list>
#include <vector>

#include "mproc.h"
#include "test_util.h"

#ifndef _WIN32
#include <signal.h>
#include <unistd.h>
#endif

using mproc_test::kWindows;
using mproc_test::ptr;
namespace fs = std::filesystem;

namespace {

// ---- helpers used by the targets (they run in the child) ----

std::string recv_str(mproc_connection *c) {
  char *m = nullptr;
  size_t n = 0;
  if (mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &m, &n) != 0)
    return "<" + std::string(mproc_last_error()) + ">";
  std::string s(m, n);
  mproc_free(m);
  return s;
}

void send_str(mproc_connection *c, const std::string &s) {
  mproc_connection_send_bytes(c, s.data(), s.size(), 0, MPROC_ALL);
}

// ---- targets ----

int t_return_arg_as_code(const mproc_args *a) { return atoi(std::string((const char *)a->data, a->size).c_str()); }

int t_exit_in_target(const mproc_args *a) {
  (void)a;
  exit(3);
}

int t_abort(const mproc_args *a) {
  (void)a;
  abort();
}

int t_echo_identity(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  std::string s = std::string((const char *)a->data, a->size) + "|" + mproc_current_process_name() + "|" +
                  std::to_string(mproc_getpid()) + "|" + std::to_string(mproc_parent_process_pid()) + "|" +
                  (mproc_parent_process_name() ? mproc_parent_process_name() : "(none)") + "|" +
                  (mproc_current_process_daemon() ? "daemon" : "normal");
  send_str(c, s);
  return 0;
}

int t_wait_for_go(const mproc_args *a) { return recv_str(a->connections[0]) == "go" ? 0 : 1; }

int t_block_forever(const mproc_args *a) {
  recv_str(a->connections[0]); // until killed (or the peer closes)
  return 0;
}

int t_send_big(const mproc_args *a) {
  std::vector<char> v(64u << 20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (char)(i * 7);
  return mproc_connection_send_bytes(a->connections[0], v.data(), v.size(), 0, MPROC_ALL) == 0 ? 0 : 1;
}

int t_interleaved(const mproc_args *a) {
  std::string id((const char *)a->data, a->size);
  for (int i = 0; i < 5; ++i) send_str(a->connections[0], id + ":" + std::to_string(i));
  return 0;
}

// Starts a grandchild that reports its identity through the connection we were handed.
// The argument, if any, is one byte: the start method for the grandchild (under forkserver the child
// starts a fork server of its own).
int t_start_grandchild(const mproc_args *a) {
  mproc_process *g = nullptr;
  auto method = a->size ? (mproc_start_method)((const char *)a->data)[0] : MPROC_START_DEFAULT;
  if (mproc_process_create(&g, ptr(mproc_process_opts{.target = t_echo_identity,
                                                      .arg = "g",
                                                      .arg_size = 1,
                                                      .connections = a->connections,
                                                      .connection_count = 1,
                                                      .start_method = method})) != 0)
    return 10;
  int rc = mproc_process_start(g);
  if (rc != 0) {
    send_str(a->connections[0], std::string("start failed: ") + mproc_last_error());
    return 11;
  }
  rc = mproc_process_join(g, MPROC_INFINITE);
  int code = -1;
  mproc_process_exitcode(g, &code);
  mproc_process_destroy(g);
  return rc == 0 && code == 0 ? 0 : 12;
}

int t_daemon_tries_child(const mproc_args *a) {
  mproc_process *g = nullptr;
  if (mproc_process_create(&g, ptr(mproc_process_opts{.target = t_return_arg_as_code})) != 0) return 10;
  int rc = mproc_process_start(g);
  send_str(a->connections[0], std::to_string(rc) + "|" + mproc_last_error());
  mproc_process_destroy(g);
  return 0;
}

// connections[0]: hand to a daemon grandchild that blocks on it; connections[1]: report "ready".
int t_parent_of_daemon(const mproc_args *a) {
  mproc_process *d = nullptr;
  if (mproc_process_create(
          &d, ptr(mproc_process_opts{
                  .target = t_block_forever, .connections = a->connections, .connection_count = 1, .daemon = true})) !=
      0)
    return 10;
  if (mproc_process_start(d) != 0) return 11;
  mproc_connection_close(a->connections[0]); // only the daemon holds it now
  send_str(a->connections[1], "ready " + std::to_string(mproc_process_pid(d)));
  recv_str(a->connections[1]); // wait to be killed
  return 0;
}

// At normal exit: the daemon child (blocked on connections[0]) is terminated, the normal child
// (waiting for "go" on connections[1], then writing the marker file named in the argument) is joined.
int t_exit_with_children(const mproc_args *a) {
  std::string marker((const char *)a->data, a->size);
  mproc_process *d = nullptr, *n = nullptr;
  mproc_connection *dc[1] = {a->connections[0]};
  mproc_connection *nc[1] = {a->connections[1]};
  struct Marker {
    static int write(const mproc_args *x) {
      if (recv_str(x->connections[0]) != "go") return 1;
      std::ofstream(std::string((const char *)x->data, x->size)) << "done";
      return 0;
    }
  };
  if (mproc_process_create(
          &d, ptr(mproc_process_opts{
                  .target = t_block_forever, .connections = dc, .connection_count = 1, .daemon = true})) != 0 ||
      mproc_process_create(&n, ptr(mproc_process_opts{.target = Marker::write,
                                                      .arg = marker.data(),
                                                      .arg_size = marker.size(),
                                                      .connections = nc,
                                                      .connection_count = 1})) != 0)
    return 10;
  if (mproc_process_start(d) != 0 || mproc_process_start(n) != 0) return 11;
  mproc_connection_close(a->connections[0]);
  mproc_connection_close(a->connections[1]);
  send_str(a->connections[2], "started");
  mproc_process_destroy(d); // dropped while running: still terminated / joined at exit
  mproc_process_destroy(n);
  return 0;
}

// Every kind of connection end at once: each duplex end echoes one message back ("echo:" + it), the
// receive-only end's message is sent back on the send-only end.
int t_echo_on_every_end(const mproc_args *a) {
  std::string one_way;
  for (size_t i = 0; i < a->connection_count; ++i) {
    mproc_connection *c = a->connections[i];
    if (mproc_connection_readable(c) && mproc_connection_writable(c))
      send_str(c, "echo:" + recv_str(c));
    else if (mproc_connection_readable(c))
      one_way = recv_str(c);
  }
  for (size_t i = 0; i < a->connection_count; ++i)
    if (!mproc_connection_readable(a->connections[i])) send_str(a->connections[i], "back:" + one_way);
  return 0;
}

class ProcessTest : public ::testing::TestWithParam<mproc_start_method> {
 protected:
  mproc_process_opts opts(mproc_target t) {
    mproc_process_opts o{};
    o.target = t;
    o.start_method = GetParam();
    return o;
  }
  // create + start, asserting success
  mproc_process *start(mproc_process_opts o) {
    mproc_process *p = nullptr;
    EXPECT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
    if (!p) return nullptr;
    EXPECT_EQ(mproc_process_start(p), 0) << mproc_last_error();
    return p;
  }
  // Start `t` with one new connection handed to it; *mine is our end. Everything is released at the end
  // of the test.
  mproc_process *start_linked(mproc_target t, mproc_connection **mine, mproc_process_opts o = {}) {
    mproc_connection *a = nullptr, *b = nullptr;
    EXPECT_EQ(mproc_pipe(true, &a, &b), 0);
    owned_conns_.push_back(a);
    owned_conns_.push_back(b);
    handed_.push_back({b});
    o.target = t;
    o.start_method = GetParam();
    o.connections = handed_.back().data();
    o.connection_count = 1;
    *mine = a;
    mproc_process *p = start(o);
    if (p) owned_procs_.push_back(p);
    return p;
  }
  void TearDown() override {
    for (auto *p : owned_procs_) mproc_process_destroy(p);
    for (auto *c : owned_conns_) mproc_connection_destroy(c);
  }
  std::vector<mproc_connection *> owned_conns_;
  std::vector<std::vector<mproc_connection *>> handed_;
  std::vector<mproc_process *> owned_procs_;

  int run_to_exit(mproc_process_opts o) {
    mproc_process *p = start(o);
    if (!p) return -12345;
    EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0) << mproc_last_error();
    int code = -12345;
    EXPECT_TRUE(mproc_process_exitcode(p, &code));
    mproc_process_destroy(p);
    return code;
  }
};

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}

} // namespace

INSTANTIATE_TEST_SUITE_P(Methods, ProcessTest, ::testing::ValuesIn(methods()),
                         [](const ::testing::TestParamInfo<mproc_start_method> &i) {
                           return std::string(mproc_start_method_name(i.param));
                         });

TEST_P(ProcessTest, TargetReturnValueIsTheExitcode) {
  auto o = opts(t_return_arg_as_code);
  o.arg = "7";
  o.arg_size = 1;
  EXPECT_EQ(run_to_exit(o), 7);
  o.arg = "0";
  EXPECT_EQ(run_to_exit(o), 0);
  o.arg = "300"; // POSIX keeps the low 8 bits of an exit status (a forkserver child says so itself)
  o.arg_size = 3;
  EXPECT_EQ(run_to_exit(o), kWindows ? 300 : 44);
}

TEST_P(ProcessTest, ExitInTargetGivesItsCode) { EXPECT_EQ(run_to_exit(opts(t_exit_in_target)), 3); }

TEST_P(ProcessTest, AbortGivesTheSignal) {
  int code = run_to_exit(opts(t_abort));
  if (kWindows) {
    EXPECT_TRUE(mproc_test::is_windows_abort_status(code)) << code; // 3, or 0xC0000409 under the UCRT
  } else {
    EXPECT_EQ(code, -6);
  }
}

TEST_P(ProcessTest, KillAndTerminateGiveMinusSignal) {
  for (int sig : {MPROC_SIGKILL, MPROC_SIGTERM}) {
    mproc_connection *a = nullptr;
    mproc_process *p = start_linked(t_block_forever, &a);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(mproc_process_is_alive(p));
    int code = 0;
    EXPECT_FALSE(mproc_process_exitcode(p, &code));
    EXPECT_EQ(mproc_process_close(p), MPROC_ESTATE); // refused while running
    EXPECT_EQ(sig == MPROC_SIGKILL ? mproc_process_kill(p) : mproc_process_terminate(p), 0);
    ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
    EXPECT_FALSE(mproc_process_is_alive(p));
    ASSERT_TRUE(mproc_process_exitcode(p, &code));
    EXPECT_EQ(code, -sig);
    EXPECT_EQ(mproc_process_kill(p), 0); // ended: a no-op
    EXPECT_EQ(mproc_process_close(p), 0);
  }
}

TEST_P(ProcessTest, JoinTimesOutWhileTheChildWaits) {
  mproc_connection *a = nullptr;
  mproc_process *p = start_linked(t_wait_for_go, &a);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
  EXPECT_EQ(mproc_process_join(p, 50), MPROC_ETIMEDOUT);
  EXPECT_TRUE(mproc_process_is_alive(p));
  send_str(a, "go");
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  EXPECT_GT(mproc_process_pid(p), 0);
}

// The process's waitable (its sentinel) is ready when the child has ended, not before: under forkserver
// its boot link already holds its answer to start, which start no longer waits for.
TEST_P(ProcessTest, WaitOnARunningChildTimesOutUntilItEnds) {
  mproc_connection *a = nullptr;
  mproc_process *p = start_linked(t_wait_for_go, &a);
  ASSERT_NE(p, nullptr);
  mproc_waitable w[1] = {mproc_waitable_process(p)};
  size_t nready = 0;
  EXPECT_EQ(mproc_wait(w, 1, 50, &nready), MPROC_ETIMEDOUT);
  EXPECT_FALSE(w[0].ready);
  EXPECT_TRUE(mproc_process_is_alive(p));
  send_str(a, "go");
  ASSERT_EQ(mproc_wait(w, 1, 60000, &nready), 0) << mproc_last_error();
  EXPECT_TRUE(w[0].ready);
  EXPECT_FALSE(mproc_process_is_alive(p));
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
}

// Once the waitable says the child has ended, a join that does not wait succeeds and the exitcode is
// known, however the child ended: by returning, by exit() in its target, by a signal of its own (abort) or
// killed. Under forkserver the server, busy with starts, reaps lazily, and the parent asks it for the
// status of a child that could not leave its own on its link.
TEST_P(ProcessTest, AReadyWaitableMeansJoinSucceedsAtOnceHoweverTheChildEnded) {
  for (int round = 0; round < 5; ++round) {
    for (int how = 0; how < 4; ++how) {
      SCOPED_TRACE("round " + std::to_string(round) + ", end " + std::to_string(how));
      mproc_connection *a = nullptr;
      mproc_process *p = nullptr;
      auto o = opts(how == 0 ? t_return_arg_as_code : how == 1 ? t_exit_in_target : t_abort);
      o.arg = "5";
      o.arg_size = 1;
      if (how == 3) {
        p = start_linked(t_block_forever, &a); // destroyed at the end of the test
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(mproc_process_kill(p), 0) << mproc_last_error();
      } else {
        p = start(o);
        ASSERT_NE(p, nullptr);
      }
      mproc_waitable w[1] = {mproc_waitable_process(p)};
      size_t nready = 0;
      ASSERT_EQ(mproc_wait(w, 1, 60000, &nready), 0) << mproc_last_error();
      ASSERT_EQ(mproc_process_join(p, 0), 0) << mproc_last_error();
      int code = 0;
      EXPECT_TRUE(mproc_process_exitcode(p, &code));
      if (how == 2 && kWindows) {
        EXPECT_TRUE(mproc_test::is_windows_abort_status(code)) << code; // 3, or 0xC0000409 under the UCRT
      } else {
        static const int expected[] = {5, 3, -6, -9};
        EXPECT_EQ(code, expected[how]);
      }
      if (how != 3) mproc_process_destroy(p);
    }
  }
}

TEST_P(ProcessTest, MisuseIsAStateError) {
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, ptr(opts(t_return_arg_as_code))), 0);
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_terminate(p), MPROC_ESTATE);
  EXPECT_FALSE(mproc_process_is_alive(p));
  EXPECT_EQ(mproc_process_pid(p), 0);
  EXPECT_EQ(mproc_process_sentinel(p), MPROC_NO_HANDLE);
  ASSERT_EQ(mproc_process_start(p), 0);
  EXPECT_EQ(mproc_process_start(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_set_daemon(p, true), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  mproc_process_destroy(p);
  EXPECT_EQ(mproc_process_create(&p, ptr(mproc_process_opts{})), MPROC_EINVAL);
  EXPECT_EQ(mproc_process_create(nullptr, ptr(opts(t_return_arg_as_code))), MPROC_EINVAL);
  auto o = opts(t_return_arg_as_code);
  o.arg_size = 3;
  EXPECT_EQ(mproc_process_create(&p, &o), MPROC_EINVAL);
  // sizes whose sum wraps, and an option outside its enum
  char byte = 0;
  for (size_t huge : {SIZE_MAX, SIZE_MAX - 8, SIZE_MAX - 300, SIZE_MAX / 2 + 1}) {
    auto h = opts(t_return_arg_as_code);
    h.arg = &byte;
    h.arg_size = huge;
    EXPECT_EQ(mproc_process_create(&p, &h), MPROC_ENOMEM) << huge;
    EXPECT_EQ(p, nullptr);
  }
  auto k = opts(t_return_arg_as_code);
  k.kill_on_parent_death = (mproc_option)7;
  EXPECT_EQ(mproc_process_create(&p, &k), MPROC_EINVAL);
}

TEST_P(ProcessTest, AClosedProcessRefusesEverythingButDestroy) {
  mproc_process *p = start(opts(t_return_arg_as_code));
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  ASSERT_EQ(mproc_process_close(p), 0);
  EXPECT_EQ(mproc_process_close(p), 0); // twice is harmless
  EXPECT_EQ(mproc_process_join(p, 0), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_terminate(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_kill(p), MPROC_ESTATE);
  EXPECT_EQ(mproc_process_start(p), MPROC_ESTATE);
  EXPECT_FALSE(mproc_process_is_alive(p));
  mproc_waitable w = mproc_waitable_process(p);
  EXPECT_EQ(mproc_wait(&w, 1, 0, nullptr), MPROC_ESTATE);
  mproc_process_destroy(p);
}

TEST_P(ProcessTest, NamesPidsAndParentInTheChild) {
  mproc_connection *a, *b;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  auto o = opts(t_echo_identity);
  mproc_connection *conns[] = {b};
  o.connections = conns;
  o.connection_count = 1;
  o.arg = "args!";
  o.arg_size = 5;
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  std::string name = mproc_process_name(p);
  EXPECT_EQ(name.rfind("Process-", 0), 0u) << name;
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  std::string got = recv_str(a);
  std::string expect = "args!|" + name + "|" + std::to_string(mproc_process_pid(p)) + "|" +
                       std::to_string(mproc_getpid()) + "|MainProcess|normal";
  EXPECT_EQ(got, expect);
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  mproc_process_destroy(p);
  // an explicit name, and the default counter moves on
  o.name = "worker";
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  EXPECT_STREQ(mproc_process_name(p), "worker");
  ASSERT_EQ(mproc_process_start(p), 0);
  EXPECT_EQ(recv_str(a).substr(0, 12), "args!|worker");
  mproc_process_join(p, MPROC_INFINITE);
  mproc_process_destroy(p);
  EXPECT_STREQ(mproc_current_process_name(), "MainProcess");
  EXPECT_EQ(mproc_parent_process_pid(), 0);
  EXPECT_EQ(mproc_parent_process_name(), nullptr);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

TEST_P(ProcessTest, GrandchildIsNamedAfterItsParent) {
  mproc_connection *a = nullptr;
  const char method = (char)GetParam(); // the grandchild is started the same way
  mproc_process *p = start_linked(t_start_grandchild, &a, mproc_process_opts{.arg = &method, .arg_size = 1});
  ASSERT_NE(p, nullptr);
  std::string child = mproc_process_name(p);
  std::string got = recv_str(a);
  // g|Process-N:1|<pid>|<child pid>|Process-N|normal
  EXPECT_EQ(got.substr(0, got.find('|', 2) + 1), "g|" + child + ":1|") << got;
  EXPECT_NE(got.find("|" + std::to_string(mproc_process_pid(p)) + "|" + child + "|normal"), std::string::npos) << got;
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  mproc_process_exitcode(p, &code);
  EXPECT_EQ(code, 0);
}

TEST_P(ProcessTest, DaemonMayNotStartChildren) {
  mproc_connection *a = nullptr;
  mproc_process_opts o{};
  o.daemon = true;
  mproc_process *p = start_linked(t_daemon_tries_child, &a, o);
  ASSERT_NE(p, nullptr);
  std::string got = recv_str(a);
  EXPECT_EQ(got.substr(0, got.find('|')), std::to_string(MPROC_ESTATE)) << got;
  EXPECT_NE(got.find("daemonic"), std::string::npos) << got;
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
}

TEST_P(ProcessTest, SixtyFourMebibytesFromAChild) {
  mproc_connection *a = nullptr;
  mproc_process *p = start_linked(t_send_big, &a);
  ASSERT_NE(p, nullptr);
  char *m = nullptr;
  size_t n = 0;
  ASSERT_EQ(mproc_connection_recv_bytes(a, 0, MPROC_INFINITE, &m, &n), 0) << mproc_last_error();
  ASSERT_EQ(n, 64u << 20);
  bool ok = true;
  for (size_t i = 0; i < n && ok; ++i) ok = m[i] == (char)(i * 7);
  EXPECT_TRUE(ok);
  mproc_free(m);
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
}

TEST_P(ProcessTest, WaitOverFourChildrenSendingInterleavedMessages) {
  constexpr int kKids = 4;
  mproc_connection *rd[kKids], *wr[kKids];
  mproc_process *kids[kKids];
  for (int i = 0; i < kKids; ++i) {
    ASSERT_EQ(mproc_pipe(false, &rd[i], &wr[i]), 0);
    auto o = opts(t_interleaved);
    std::string id = std::to_string(i);
    o.arg = id.data();
    o.arg_size = id.size();
    mproc_connection *conns[] = {wr[i]};
    o.connections = conns;
    o.connection_count = 1;
    kids[i] = start(o);
    ASSERT_NE(kids[i], nullptr);
    mproc_connection_close(wr[i]); // only the child can send now: EOF when it is done
  }
  std::vector<int> next(kKids, 0);
  int open = kKids, ended = 0;
  std::vector<bool> eof(kKids, false), joined(kKids, false);
  while (open > 0 || ended < kKids) {
    std::vector<mproc_waitable> w;
    std::vector<int> who;
    for (int i = 0; i < kKids; ++i) {
      if (!eof[i]) {
        w.push_back(mproc_waitable_connection(rd[i]));
        who.push_back(i);
      }
      if (!joined[i]) {
        w.push_back(mproc_waitable_process(kids[i]));
        who.push_back(kKids + i);
      }
    }
    size_t nready = 0;
    ASSERT_EQ(mproc_wait(w.data(), w.size(), 60000, &nready), 0) << mproc_last_error();
    ASSERT_GE(nready, 1u);
    for (size_t k = 0; k < w.size(); ++k) {
      if (!w[k].ready) continue;
      int i = who[k];
      if (i < kKids) {
        char *m = nullptr;
        size_t n = 0;
        int rc = mproc_connection_recv_bytes(rd[i], 0, 0, &m, &n);
        if (rc == MPROC_EEOF) {
          eof[i] = true;
          --open;
          continue;
        }
        ASSERT_EQ(rc, 0) << mproc_last_error();
        EXPECT_EQ(std::string(m, n), std::to_string(i) + ":" + std::to_string(next[i])); // in order per child
        ++next[i];
        mproc_free(m);
      } else {
        i -= kKids;
        ASSERT_EQ(mproc_process_join(kids[i], 0), 0); // the sentinel said it ended
        joined[i] = true;
        ++ended;
      }
    }
  }
  for (int i = 0; i < kKids; ++i) {
    EXPECT_EQ(next[i], 5);
    mproc_process_destroy(kids[i]);
    mproc_connection_destroy(rd[i]);
    mproc_connection_destroy(wr[i]);
  }
}

TEST_P(ProcessTest, DaemonIsKilledWhenItsParentIsKilledHard) {
  mproc_connection *watch_a, *watch_b, *ctl_a, *ctl_b;
  ASSERT_EQ(mproc_pipe(true, &watch_a, &watch_b), 0);
  ASSERT_EQ(mproc_pipe(true, &ctl_a, &ctl_b), 0);
  auto o = opts(t_parent_of_daemon);
  mproc_connection *conns[] = {watch_b, ctl_b};
  o.connections = conns;
  o.connection_count = 2;
  mproc_process *mid = start(o);
  ASSERT_NE(mid, nullptr);
  mproc_connection_close(watch_b); // now only the daemon grandchild holds the other end
  std::string ready = recv_str(ctl_a);
  ASSERT_EQ(ready.rfind("ready ", 0), 0u) << ready;
  ASSERT_EQ(mproc_process_kill(mid), 0); // the parent dies without any chance to clean up
  ASSERT_EQ(mproc_process_join(mid, MPROC_INFINITE), 0);
  // The daemon notices and dies: its end of `watch` closes, so we see end of file. Without the
  // option it would block forever and this receive would hit the ctest timeout.
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(watch_a, 0, 60000, &m, &n), MPROC_EEOF) << mproc_last_error();
  mproc_process_destroy(mid);
  for (auto *c : {watch_a, watch_b, ctl_a, ctl_b}) mproc_connection_destroy(c);
}

TEST_P(ProcessTest, AtExitDaemonsAreTerminatedAndOthersJoined) {
  fs::path marker = fs::temp_directory_path() /
                    ("mproc-marker-" + std::to_string(mproc_getpid()) + "-" + mproc_start_method_name(GetParam()));
  fs::remove(marker);
  std::string ms = marker.string();
  mproc_connection *d_a, *d_b, *n_a, *n_b, *c_a, *c_b;
  ASSERT_EQ(mproc_pipe(true, &d_a, &d_b), 0);
  ASSERT_EQ(mproc_pipe(true, &n_a, &n_b), 0);
  ASSERT_EQ(mproc_pipe(true, &c_a, &c_b), 0);
  auto o = opts(t_exit_with_children);
  mproc_connection *conns[] = {d_b, n_b, c_b};
  o.connections = conns;
  o.connection_count = 3;
  o.arg = ms.data();
  o.arg_size = ms.size();
  mproc_process *p = start(o);
  ASSERT_NE(p, nullptr);
  mproc_connection_close(d_b);
  mproc_connection_close(n_b);
  ASSERT_EQ(recv_str(c_a), "started");
  // the child's target has returned; its exit is waiting for the normal grandchild
  EXPECT_EQ(mproc_process_join(p, 100), MPROC_ETIMEDOUT);
  EXPECT_FALSE(fs::exists(marker));
  send_str(n_a, "go");
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  mproc_process_exitcode(p, &code);
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(fs::exists(marker)); // joined before the child exited
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(d_a, 0, 60000, &m, &n), MPROC_EEOF); // the daemon was terminated
  fs::remove(marker);
  mproc_process_destroy(p);
  for (auto *c : {d_a, d_b, n_a, n_b, c_a, c_b}) mproc_connection_destroy(c);
}

TEST_P(ProcessTest, ActiveChildrenAndSentinel) {
  mproc_connection *a = nullptr;
  mproc_process *p = start_linked(t_wait_for_go, &a);
  ASSERT_NE(p, nullptr);
  EXPECT_NE(mproc_process_sentinel(p), MPROC_NO_HANDLE);
  mproc_process **list = nullptr;
  size_t count = 0;
  ASSERT_EQ(mproc_active_children(&list, &count), 0);
  bool found = false;
  for (size_t i = 0; i < count; ++i) found = found || list[i] == p;
  EXPECT_TRUE(found);
  mproc_free(list);
  send_str(a, "go");
  mproc_waitable w[1] = {mproc_waitable_process(p)};
  size_t nready = 0;
  ASSERT_EQ(mproc_wait(w, 1, 60000, &nready), 0);
  EXPECT_TRUE(w[0].ready);
  ASSERT_EQ(mproc_active_children(&list, &count), 0);
  for (size_t i = 0; i < count; ++i) EXPECT_NE(list[i], p);
  mproc_free(list);
}

TEST_P(ProcessTest, HandedConnectionMustBeOpen) {
  mproc_connection *a, *b;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  mproc_connection_close(b);
  auto o = opts(t_wait_for_go);
  mproc_connection *conns[] = {b};
  o.connections = conns;
  o.connection_count = 1;
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, &o), 0);
  EXPECT_EQ(mproc_process_start(p), MPROC_ECLOSED);
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

// Eighty duplex connections, a receive-only and a send-only end, handed at once (under forkserver
// their descriptors all travel with one request: 244 of them on POSIX, where a duplex end has three:
// a pipe each way and a socket for bulk).
TEST_P(ProcessTest, EightyDuplexAndOneWayConnectionsAllWorkInTheChild) {
  const size_t kDuplex = 80;
  std::vector<mproc_connection *> mine, theirs;
  for (size_t i = 0; i < kDuplex; ++i) {
    mproc_connection *a, *b;
    ASSERT_EQ(mproc_pipe(true, &a, &b), 0) << mproc_last_error();
    mine.push_back(a);
    theirs.push_back(b);
  }
  mproc_connection *to_child_r, *to_child_w, *from_child_r, *from_child_w;
  ASSERT_EQ(mproc_pipe(false, &to_child_r, &to_child_w), 0);
  ASSERT_EQ(mproc_pipe(false, &from_child_r, &from_child_w), 0);
  theirs.push_back(to_child_r);
  theirs.push_back(from_child_w);
  auto o = opts(t_echo_on_every_end);
  o.connections = theirs.data();
  o.connection_count = theirs.size();
  mproc_process *p = start(o);
  ASSERT_NE(p, nullptr);
  for (auto *c : theirs) mproc_connection_close(c); // the child has its own copies now
  for (size_t i = 0; i < kDuplex; ++i) send_str(mine[i], std::to_string(i));
  send_str(to_child_w, "one way");
  for (size_t i = 0; i < kDuplex; ++i) EXPECT_EQ(recv_str(mine[i]), "echo:" + std::to_string(i));
  EXPECT_EQ(recv_str(from_child_r), "back:one way");
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  mproc_process_destroy(p);
  for (auto *c : mine) mproc_connection_destroy(c);
  for (auto *c : theirs) mproc_connection_destroy(c);
  for (auto *c : {to_child_w, from_child_r}) mproc_connection_destroy(c);
}

// A pointer into heap memory is not a function of any module: it cannot be found again. Under spawn the
// child finds out and tells; the fork server finds the target before it forks. Either way the start
// fails in the parent with the reason, and (forkserver) the server serves on.
TEST(ProcessStart, TargetOutsideAnyModuleFailsInTheParent) {
  std::vector<char> fake(64);
  for (mproc_start_method m : methods()) {
    if (m == MPROC_START_FORK) continue; // a fork child has the same memory: nothing to find
    mproc_process *p = nullptr;
    mproc_process_opts o{};
    o.target = (mproc_target)(void *)fake.data();
    o.start_method = m;
    ASSERT_EQ(mproc_process_create(&p, &o), 0);
    EXPECT_EQ(mproc_process_start(p), MPROC_ENOENT) << mproc_start_method_name(m);
    EXPECT_NE(std::string(mproc_last_error()).find("module"), std::string::npos) << mproc_last_error();
    EXPECT_EQ(mproc_process_join(p, 0), MPROC_ESTATE); // not started
    mproc_process_destroy(p);
    ASSERT_EQ(
        mproc_process_create(
            &p, ptr(mproc_process_opts{.target = t_return_arg_as_code, .arg = "5", .arg_size = 1, .start_method = m})),
        0);
    ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
    ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
    int code = -1;
    EXPECT_TRUE(mproc_process_exitcode(p, &code));
    EXPECT_EQ(code, 5);
    mproc_process_destroy(p);
  }
}

TEST(ProcessMethods, AvailabilityAndContexts) {
  EXPECT_EQ(mproc_get_start_method(), MPROC_START_SPAWN); // the documented default
  EXPECT_EQ(mproc_set_start_method(MPROC_START_FORKSERVER), kWindows ? MPROC_ENOTSUP : 0);
  EXPECT_EQ(mproc_set_start_method((mproc_start_method)99), MPROC_EINVAL);
  EXPECT_EQ(mproc_set_start_method(MPROC_START_FORK), kWindows ? MPROC_ENOTSUP : 0);
  EXPECT_EQ(mproc_set_start_method(MPROC_START_DEFAULT), 0);
  EXPECT_EQ(mproc_get_start_method(), MPROC_START_SPAWN);
  const mproc_context *ctx = nullptr;
  ASSERT_EQ(mproc_get_context(MPROC_START_SPAWN, &ctx), 0);
  EXPECT_EQ(mproc_context_start_method(ctx), MPROC_START_SPAWN);
  EXPECT_STREQ(mproc_start_method_name(MPROC_START_FORK), "fork");
  // a process created with a context uses its method
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(
                &p, ptr(mproc_process_opts{.target = t_return_arg_as_code, .arg = "5", .arg_size = 1, .context = ctx})),
            0);
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  ASSERT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  mproc_process_exitcode(p, &code);
  EXPECT_EQ(code, 5);
  mproc_process_destroy(p);
}

#ifndef _WIN32
// ---- forkserver (POSIX) ----

// The OS parent (the fork server), then the logical parent as mproc reports it (as CPython: the
// process that created the Process object), then waits for "go" on the same connection.
int t_report_parents(const mproc_args *a) {
  send_str(a->connections[0], std::to_string((long long)getppid()) + "|" + std::to_string(mproc_parent_process_pid()) +
                                  "|" + mproc_parent_process_name());
  return recv_str(a->connections[0]) == "go" ? 4 : 5;
}

struct Reported {
  long long os_parent = 0;
  std::string logical;
};

// Start a forkserver child running t_report_parents; *p and *a are its process and our connection end.
Reported start_reporter(mproc_process **p, mproc_connection **a) {
  mproc_connection *b = nullptr;
  EXPECT_EQ(mproc_pipe(true, a, &b), 0);
  mproc_connection *conns[] = {b};
  EXPECT_EQ(mproc_process_create(p, ptr(mproc_process_opts{.target = t_report_parents,
                                                           .connections = conns,
                                                           .connection_count = 1,
                                                           .start_method = MPROC_START_FORKSERVER})),
            0);
  int rc = mproc_process_start(*p);
  EXPECT_EQ(rc, 0) << mproc_last_error();
  mproc_connection_destroy(b);
  if (rc) return {};
  std::string got = recv_str(*a);
  size_t bar = got.find('|');
  return {atoll(got.substr(0, bar).c_str()), got.substr(bar + 1)};
}

int finish_reporter(mproc_process *p, mproc_connection *a) {
  send_str(a, "go");
  EXPECT_EQ(mproc_process_join(p, MPROC_INFINITE), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  mproc_process_destroy(p);
  mproc_connection_destroy(a);
  return code;
}

// One request carries at most 253 descriptors (Linux's SCM_MAX_FD): the boot link's and three per
// duplex connection end. Over that, start says so in the parent.
TEST(ProcessForkserver, TooManyDescriptorsForOneRequestIsAnError) {
  std::vector<mproc_connection *> mine, theirs;
  for (int i = 0; i < 85; ++i) { // 255 descriptors + the boot link's
    mproc_connection *a, *b;
    ASSERT_EQ(mproc_pipe(true, &a, &b), 0) << mproc_last_error();
    mine.push_back(a);
    theirs.push_back(b);
  }
  mproc_process *p = nullptr;
  ASSERT_EQ(mproc_process_create(&p, ptr(mproc_process_opts{.target = t_report_parents,
                                                            .connections = theirs.data(),
                                                            .connection_count = theirs.size(),
                                                            .start_method = MPROC_START_FORKSERVER})),
            0);
  EXPECT_EQ(mproc_process_start(p), MPROC_EINVAL);
  EXPECT_NE(std::string(mproc_last_error()).find("255 descriptors"), std::string::npos) << mproc_last_error();
  mproc_process_destroy(p);
  for (auto *c : mine) mproc_connection_destroy(c);
  for (auto *c : theirs) mproc_connection_destroy(c);
}

TEST(ProcessForkserver, OneServerServesManyAndIsReplacedWhenItDies) {
  const std::string logical = std::to_string(mproc_getpid()) + "|MainProcess";
  mproc_process *p1, *p2;
  mproc_connection *a1, *a2;
  Reported r1 = start_reporter(&p1, &a1);
  Reported r2 = start_reporter(&p2, &a2);
  // both children were forked by one server, a process of its own; mproc's parent is the creator
  EXPECT_EQ(r1.os_parent, r2.os_parent);
  EXPECT_NE(r1.os_parent, (long long)mproc_getpid());
  EXPECT_GT(r1.os_parent, 1);
  EXPECT_EQ(r1.logical, logical);
  EXPECT_EQ(r2.logical, logical);
  EXPECT_EQ(finish_reporter(p1, a1), 4);

  // The server dies while p2 runs: p2 goes on. Its exit status: on Linux its own last word on the link,
  // read once its pidfd says it has gone (the server's report is not needed when a child returns from
  // its target); elsewhere the server's report alone tells it, so it is unknown then (255, as CPython).
  ASSERT_EQ(kill((pid_t)r1.os_parent, SIGKILL), 0);
  EXPECT_TRUE(mproc_process_is_alive(p2));
#ifdef __linux__
  EXPECT_EQ(finish_reporter(p2, a2), 4);
#else
  EXPECT_EQ(finish_reporter(p2, a2), 255);
#endif

  // The next start starts a new server.
  mproc_process *p3;
  mproc_connection *a3;
  Reported r3 = start_reporter(&p3, &a3);
  EXPECT_NE(r3.os_parent, r1.os_parent);
  EXPECT_GT(r3.os_parent, 1);
  EXPECT_EQ(r3.logical, logical);
  EXPECT_EQ(finish_reporter(p3, a3), 4);
}

TEST(ProcessForkserver, ServerKilledBetweenStartsIsReplaced) {
  mproc_process *p;
  mproc_connection *a;
  Reported r1 = start_reporter(&p, &a);
  EXPECT_EQ(finish_reporter(p, a), 4);
  ASSERT_EQ(kill((pid_t)r1.os_parent, SIGKILL), 0);
  // however far the server's death has gone by now, this start succeeds on a new server
  Reported r2 = start_reporter(&p, &a);
  EXPECT_NE(r2.os_parent, r1.os_parent);
  EXPECT_EQ(finish_reporter(p, a), 4);
}
#endif

TEST(ProcessSpawn, ForgottenGuardIsAClearErrorNotAForkBomb) {
  std::string helper = mproc_test::helper_path();
  std::string prog =
      helper.substr(0, helper.rfind("mproc_helper")) + (kWindows ? "mproc_noguard.exe" : "mproc_noguard");
  const char *argv[] = {prog.c_str(), nullptr};
  mproc_completed r;
  ASSERT_EQ(mproc_run(ptr(mproc_popen_opts{.argv = argv, .capture_output = true}), 120000, &r), 0)
      << mproc_last_error();
  std::string out = r.stdout_data ? r.stdout_data : "";
  EXPECT_EQ(r.returncode, 3) << out;
  // the child refused to start a grandchild ...
  EXPECT_NE(out.find("did not call mproc_main_guard"), std::string::npos) << out;
  // ... and the parent's start failed, naming the cause
  EXPECT_NE(out.find("start=" + std::to_string(MPROC_ESTATE) + " start 'Process-1': the spawned child exited"),
            std::string::npos)
      << out;
  // exactly two processes ran main(): no third generation
  size_t lines = 0;
  for (char ch : out) lines += ch == '\n';
  EXPECT_EQ(lines, 2u) << out;
  mproc_completed_free(&r);
}
