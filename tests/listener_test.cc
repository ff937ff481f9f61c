// Listener / Client and authkeys: every family this platform has (Unix sockets, Linux abstract sockets,
// TCP over IPv4 and IPv6, Windows named pipes), right, wrong and missing keys on either side, stalled
// clients, mproc_wait on a listener, and the process authkey under every start method. Clients run in
// threads of the test or in child processes; nothing here waits with a sleep.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using mproc_test::kNoCrypto;
using mproc_test::kWindows;
using mproc_test::ptr;

namespace {

const char kKey[] = "the right key";
const char kOtherKey[] = "the wrong key";

std::string recv_str(mproc_connection *c, int64_t timeout_ms = 20000) {
  char *m = nullptr;
  size_t n = 0;
  int rc = mproc_connection_recv_bytes(c, 0, timeout_ms, &m, &n);
  if (rc) return "<" + std::string(mproc_strerror(rc)) + ": " + mproc_last_error() + ">";
  std::string s(m, n);
  mproc_free(m);
  return s;
}

int send_str(mproc_connection *c, const std::string &s) {
  return mproc_connection_send_bytes(c, s.data(), s.size(), 0, MPROC_ALL);
}

// One way to listen: a family and an address, and whether this platform has it.
struct Family {
  const char *name;
  mproc_family family;
  const char *address; // NULL: generated
};

// What this system offers: Unix sockets on POSIX (the abstract namespace on Linux), named pipes on
// Windows, TCP everywhere. (What it lacks is refused with MPROC_ENOTSUP: FamiliesThisSystemLacks.)
std::vector<Family> families() {
  std::vector<Family> f;
  if (kWindows) {
    f.push_back({"pipe", MPROC_FAMILY_PIPE, nullptr});
  } else {
    f.push_back({"unix_path", MPROC_FAMILY_UNIX, nullptr});
#ifdef __linux__
    f.push_back({"unix_abstract", MPROC_FAMILY_UNIX, "@"});
#endif
  }
  f.push_back({"tcp4", MPROC_FAMILY_INET, "127.0.0.1:0"});
  f.push_back({"tcp6", MPROC_FAMILY_INET6, "[::1]:0"});
  return f;
}

void PrintTo(const Family &f, std::ostream *os) { *os << f.name; }

class ListenerTest : public ::testing::TestWithParam<Family> {
 protected:
  // A listener of this test's family (with the options given), or a skip where the platform lacks it.
  mproc_listener *listen(mproc_listener_opts o = {}) {
    o.family = GetParam().family;
    o.address = GetParam().address;
    mproc_listener *l = nullptr;
    int rc = mproc_listener_create(&l, &o);
    if (kNoCrypto && (o.authkey || o.process_authkey)) {
      EXPECT_EQ(rc, MPROC_ENOTSUP) << mproc_last_error();
      skip_ = "built without libcrypto: authkeys are refused";
      mproc_listener_destroy(l);
      return nullptr;
    }
    if (rc != 0 && GetParam().family == MPROC_FAMILY_INET6) {
      skip_ = std::string("no IPv6 loopback here: ") + mproc_last_error();
      return nullptr;
    }
    EXPECT_EQ(rc, 0) << mproc_last_error();
    return l;
  }
  std::string skip_;
};

#define LISTEN_OR_SKIP(l, ...)                 \
  mproc_listener *l = listen(__VA_ARGS__);     \
  if (!l) {                                    \
    if (!skip_.empty()) GTEST_SKIP() << skip_; \
    return;                                    \
  }

// Connect to l in a thread; the result when joined.
struct ClientThread {
  int rc = -1;
  std::string error;
  mproc_connection *c = nullptr;
  std::thread t;
  ClientThread(const char *address, mproc_client_opts o, int64_t timeout_ms = 20000) {
    std::string addr = address;
    t = std::thread([this, addr, o, timeout_ms]() mutable {
      o.address = addr.c_str();
      rc = mproc_client(&c, &o, timeout_ms);
      if (rc) error = mproc_last_error();
    });
  }
  void join() {
    if (t.joinable()) t.join();
  }
  ~ClientThread() {
    join();
    mproc_connection_destroy(c);
  }
};

} // namespace

INSTANTIATE_TEST_SUITE_P(Families, ListenerTest, ::testing::ValuesIn(families()),
                         [](const ::testing::TestParamInfo<Family> &i) { return std::string(i.param.name); });

TEST_P(ListenerTest, AcceptsAClientAndTheyTalkBothWays) {
  LISTEN_OR_SKIP(l);
  const char *addr = mproc_listener_address(l);
  ASSERT_NE(addr, nullptr);
  EXPECT_EQ(mproc_listener_family(l), GetParam().family);
  EXPECT_EQ(mproc_address_family(addr), GetParam().family) << addr;
  EXPECT_EQ(mproc_listener_last_accepted(l), nullptr);
  if (GetParam().family == MPROC_FAMILY_INET || GetParam().family == MPROC_FAMILY_INET6) {
    std::string a = addr; // port 0 asked: the system's pick is reported
    EXPECT_NE(a.substr(a.rfind(':')), ":0") << a;
  }
  if (GetParam().address && std::string(GetParam().address) == "@") {
    EXPECT_GT(strlen(addr), 1u) << addr;
  }

  ClientThread client(addr, {});
  mproc_connection *s = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
  client.join();
  ASSERT_EQ(client.rc, 0) << client.error;
  const char *last = mproc_listener_last_accepted(l);
  ASSERT_NE(last, nullptr);
  if (GetParam().family == MPROC_FAMILY_INET) {
    EXPECT_EQ(std::string(last).rfind("127.0.0.1:", 0), 0u) << last;
  } else if (GetParam().family == MPROC_FAMILY_INET6) {
    EXPECT_EQ(std::string(last).rfind("[::1]:", 0), 0u) << last;
  }

  EXPECT_EQ(send_str(client.c, "ping"), 0) << mproc_last_error();
  EXPECT_EQ(recv_str(s), "ping");
  // sizes around the short frame, the read-ahead buffer and the 64 KiB write pieces of Windows
  for (size_t n : {0u, 1u, 65536u, 70001u, 3u << 20}) {
    std::string m(n, '\0');
    for (size_t i = 0; i < n; ++i) m[i] = (char)(i * 7 + i / 251);
    std::thread w([&] { EXPECT_EQ(send_str(s, m), 0) << mproc_last_error(); });
    EXPECT_EQ(recv_str(client.c), m) << n;
    w.join();
  }
  mproc_connection_destroy(s);
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(client.c, 0, 20000, &m, &n), MPROC_EEOF); // the server's end closed
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, WithTheRightKeyBothSidesAreProven) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey});
  ClientThread client(mproc_listener_address(l), {.authkey = kKey, .authkey_size = sizeof kKey});
  mproc_connection *s = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
  client.join();
  ASSERT_EQ(client.rc, 0) << client.error;
  EXPECT_EQ(send_str(s, "served"), 0);
  EXPECT_EQ(recv_str(client.c), "served"); // the first message after the handshake is the application's
  mproc_connection_destroy(s);
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, AWrongKeyIsRefusedOnBothSidesAndTheListenerGoesOn) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey});
  {
    ClientThread bad(mproc_listener_address(l), {.authkey = kOtherKey, .authkey_size = sizeof kOtherKey});
    mproc_connection *s = nullptr;
    EXPECT_EQ(mproc_listener_accept(l, 20000, &s), MPROC_EAUTH);
    EXPECT_NE(std::string(mproc_last_error()).find("another authkey"), std::string::npos) << mproc_last_error();
    EXPECT_EQ(s, nullptr);
    bad.join();
    EXPECT_EQ(bad.rc, MPROC_EAUTH) << bad.error;
    EXPECT_EQ(bad.c, nullptr);
  }
  ClientThread good(mproc_listener_address(l), {.authkey = kKey, .authkey_size = sizeof kKey});
  mproc_connection *s = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
  good.join();
  EXPECT_EQ(good.rc, 0) << good.error;
  mproc_connection_destroy(s);
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, AClientWithoutTheKeyIsChallengedAndRefused) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey});
  ClientThread client(mproc_listener_address(l), {}); // no key: no handshake, as Python's Client
  client.join();
  ASSERT_EQ(client.rc, 0) << client.error;
  // it waits for a handshake to finish: nothing is served yet
  mproc_connection *s = nullptr;
  EXPECT_EQ(mproc_listener_accept(l, 0, &s), MPROC_ETIMEDOUT);
  EXPECT_EQ(recv_str(client.c).rfind("#CHALLENGE#{sha256}", 0), 0u); // what Python's client would see too
  EXPECT_EQ(send_str(client.c, "hello"), 0);                         // not an answer
  EXPECT_EQ(mproc_listener_accept(l, 20000, &s), MPROC_EAUTH);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(recv_str(client.c), "#FAILURE#");
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(client.c, 0, 20000, &m, &n), MPROC_EEOF);
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, AListenerWithoutAKeyFailsAClientThatHasOne) {
  if (kNoCrypto) GTEST_SKIP() << "built without libcrypto: authkeys are refused";
  LISTEN_OR_SKIP(l);
  ClientThread client(mproc_listener_address(l), {.authkey = kKey, .authkey_size = sizeof kKey});
  mproc_connection *s = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error(); // served at once: no key
  EXPECT_EQ(send_str(s, "hello"), 0);                                      // where the client waits for a challenge
  client.join();
  EXPECT_EQ(client.rc, MPROC_EAUTH) << client.error;
  EXPECT_EQ(client.c, nullptr);
  mproc_connection_destroy(s);
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, AStalledClientHoldsUpNoOther) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey, .handshake_timeout_ms = 300});
  ClientThread stalled(mproc_listener_address(l), {}); // connects, then never answers
  stalled.join();
  ASSERT_EQ(stalled.rc, 0) << stalled.error;
  mproc_connection *s = nullptr;
  EXPECT_EQ(mproc_listener_accept(l, 0, &s), MPROC_ETIMEDOUT); // takes it: its handshake has begun
  EXPECT_EQ(recv_str(stalled.c).rfind("#CHALLENGE#", 0), 0u);
  {
    ClientThread good(mproc_listener_address(l), {.authkey = kKey, .authkey_size = sizeof kKey});
    ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
    good.join();
    EXPECT_EQ(good.rc, 0) << good.error;
    mproc_connection_destroy(s);
  }
  // its time runs out while accept waits for others: dropped, so it reads end of file
  EXPECT_EQ(mproc_listener_accept(l, 1000, &s), MPROC_ETIMEDOUT);
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(stalled.c, 0, 20000, &m, &n), MPROC_EEOF);
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, AnAnswerLongerThanAHandshakeMessageIsRefused) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey});
  ClientThread raw(mproc_listener_address(l), {});
  raw.join();
  ASSERT_EQ(raw.rc, 0) << raw.error;
  mproc_connection *s = nullptr;
  EXPECT_EQ(mproc_listener_accept(l, 0, &s), MPROC_ETIMEDOUT);
  EXPECT_EQ(recv_str(raw.c).rfind("#CHALLENGE#", 0), 0u);
  EXPECT_EQ(send_str(raw.c, std::string(257, '{')), 0);
  EXPECT_EQ(mproc_listener_accept(l, 20000, &s), MPROC_EAUTH);
  EXPECT_NE(std::string(mproc_last_error()).find("more than 256 bytes"), std::string::npos) << mproc_last_error();
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, WaitReportsAClientAndEveryHandshakeStep) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey});
  mproc_waitable w[1] = {mproc_waitable_listener(l)};
  size_t nready = 0;
  EXPECT_EQ(mproc_wait(w, 1, 0, &nready), MPROC_ETIMEDOUT); // nobody yet
  EXPECT_FALSE(w[0].ready);
  ClientThread client(mproc_listener_address(l), {.authkey = kKey, .authkey_size = sizeof kKey});
  // A server's loop: wait on the listener, accept what is ready without blocking, until the client is
  // through. Were a handshake step not reported, the wait would time out and the test fail.
  mproc_connection *s = nullptr;
  int rounds = 0;
  while (!s && rounds < 50) {
    ++rounds;
    ASSERT_EQ(mproc_wait(w, 1, 20000, &nready), 0) << mproc_last_error();
    ASSERT_TRUE(w[0].ready);
    int rc = mproc_listener_accept(l, 0, &s);
    ASSERT_TRUE(rc == 0 || rc == MPROC_ETIMEDOUT) << mproc_last_error();
  }
  ASSERT_NE(s, nullptr);
  client.join();
  ASSERT_EQ(client.rc, 0) << client.error;
  // and beside connections: the accepted one becomes ready with the client's message
  mproc_waitable both[2] = {mproc_waitable_listener(l), mproc_waitable_connection(s)};
  EXPECT_EQ(mproc_wait(both, 2, 0, &nready), MPROC_ETIMEDOUT);
  EXPECT_EQ(send_str(client.c, "news"), 0);
  ASSERT_EQ(mproc_wait(both, 2, 20000, &nready), 0) << mproc_last_error();
  EXPECT_FALSE(both[0].ready);
  EXPECT_TRUE(both[1].ready);
  EXPECT_EQ(recv_str(s), "news");
  mproc_connection_destroy(s);
  mproc_listener_destroy(l);
}

// Several clients at once, served by a loop that accepts only when the wait says so: a client admitted
// in the same accept as an older handshake that finished must have its challenge sent then, or nothing
// would wake the wait for it again (issue 13: the Manager's second handle timed out under wine).
TEST_P(ListenerTest, WaitReportsEveryClientOfSeveralConnectingAtOnce) {
  LISTEN_OR_SKIP(l, mproc_listener_opts{.authkey = kKey, .authkey_size = sizeof kKey});
  mproc_waitable w[1] = {mproc_waitable_listener(l)};
  for (int round = 0; round < 5; ++round) {
    std::vector<std::unique_ptr<ClientThread>> clients;
    for (int i = 0; i < 4; ++i)
      clients.push_back(std::make_unique<ClientThread>(
          mproc_listener_address(l), mproc_client_opts{.authkey = kKey, .authkey_size = sizeof kKey}));
    std::vector<mproc_connection *> got;
    while (got.size() < clients.size()) {
      size_t nready = 0;
      ASSERT_EQ(mproc_wait(w, 1, 20000, &nready), 0) << "round " << round << ", " << got.size() << " accepted";
      mproc_connection *s = nullptr;
      int rc = mproc_listener_accept(l, 0, &s);
      ASSERT_TRUE(rc == 0 || rc == MPROC_ETIMEDOUT) << mproc_last_error();
      if (s) got.push_back(s);
    }
    for (auto &c : clients) {
      c->join();
      EXPECT_EQ(c->rc, 0) << c->error;
    }
    for (mproc_connection *s : got) mproc_connection_destroy(s);
  }
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, ClosingStopsAcceptingAndLeavesNothing) {
  LISTEN_OR_SKIP(l);
  std::string addr = mproc_listener_address(l);
  ClientThread client(addr.c_str(), {});
  mproc_connection *s = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
  client.join();
  ASSERT_EQ(mproc_listener_close(l), 0);
  EXPECT_EQ(mproc_listener_close(l), 0); // twice: harmless
  mproc_connection *none = nullptr;
  EXPECT_EQ(mproc_listener_accept(l, 0, &none), MPROC_ECLOSED);
  mproc_waitable w[1] = {mproc_waitable_listener(l)};
  EXPECT_EQ(mproc_wait(w, 1, 0, nullptr), MPROC_ECLOSED);
  EXPECT_EQ(mproc_listener_address(l), addr); // still tells where it was
  // what was accepted stays open
  EXPECT_EQ(send_str(s, "after close"), 0);
  EXPECT_EQ(recv_str(client.c), "after close");
  // nobody listens there now (a pipe's name lives while any instance is open: the accepted one first)
  mproc_connection_destroy(s);
  mproc_connection *c = nullptr;
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = addr.c_str(), .family = GetParam().family}), 5000),
            MPROC_ENOENT)
      << mproc_last_error();
  mproc_listener_destroy(l);
}

TEST_P(ListenerTest, TheAddressInUseIsRefused) {
  LISTEN_OR_SKIP(l);
  mproc_listener *again = nullptr;
  EXPECT_EQ(mproc_listener_create(
                &again, ptr(mproc_listener_opts{.address = mproc_listener_address(l), .family = GetParam().family})),
            MPROC_EEXIST)
      << mproc_last_error();
  EXPECT_EQ(again, nullptr);
  mproc_listener_destroy(l);
}

// ---- addresses and arguments ----------------------------------------------------------------------

TEST(ListenerAddress, FamiliesAreInferredAsPythonsAddressType) {
  EXPECT_EQ(mproc_address_family("127.0.0.1:6000"), MPROC_FAMILY_INET);
  EXPECT_EQ(mproc_address_family("localhost:0"), MPROC_FAMILY_INET);
  EXPECT_EQ(mproc_address_family("[::1]:6000"), MPROC_FAMILY_INET6);
  EXPECT_EQ(mproc_address_family("/run/app.sock"), MPROC_FAMILY_UNIX);
  EXPECT_EQ(mproc_address_family("./a:1"), MPROC_FAMILY_UNIX);
  EXPECT_EQ(mproc_address_family("app.sock"), MPROC_FAMILY_UNIX);
  EXPECT_EQ(mproc_address_family("@name"), MPROC_FAMILY_UNIX);
  EXPECT_EQ(mproc_address_family("\\\\.\\pipe\\name"), MPROC_FAMILY_PIPE);
  EXPECT_EQ(mproc_address_family(""), MPROC_FAMILY_DEFAULT);
  EXPECT_EQ(mproc_address_family(nullptr), MPROC_FAMILY_DEFAULT);
  EXPECT_STREQ(mproc_family_name(MPROC_FAMILY_PIPE), "AF_PIPE");
}

TEST(ListenerAddress, BadArgumentsAreRefused) {
  mproc_listener *l = nullptr;
  EXPECT_EQ(mproc_listener_create(nullptr, ptr(mproc_listener_opts{})), MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "127.0.0.1:70000"})), MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "::1:80", .family = MPROC_FAMILY_INET})),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "x", .family = MPROC_FAMILY_PIPE})),
            MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.family = (mproc_family)9})), MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.authkey_size = 3})), MPROC_EINVAL);
  EXPECT_EQ(
      mproc_listener_create(&l, ptr(mproc_listener_opts{.authkey = "k", .authkey_size = 1, .process_authkey = true})),
      MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.backlog = -1})), MPROC_EINVAL);
  EXPECT_EQ(l, nullptr);
  mproc_connection *c = nullptr;
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{}), 0), MPROC_EINVAL); // no address
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = "@", .family = MPROC_FAMILY_UNIX}), 0), MPROC_EINVAL);
  EXPECT_EQ(mproc_listener_accept(nullptr, 0, &c), MPROC_EINVAL);
  EXPECT_EQ(c, nullptr);
}

TEST(ListenerAddress, NothingListeningIsENOENT) {
  mproc_connection *c = nullptr;
  const char *nowhere = kWindows ? "\\\\.\\pipe\\mproc-test-nobody-listens-here" : "/nonexistent-dir/mproc.sock";
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = nowhere}), 5000), MPROC_ENOENT) << mproc_last_error();
  // a TCP port that was just given up
  mproc_listener *l = nullptr;
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "127.0.0.1:0"})), 0) << mproc_last_error();
  std::string addr = mproc_listener_address(l);
  mproc_listener_destroy(l);
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = addr.c_str()}), 20000), MPROC_ENOENT)
      << mproc_last_error();
  EXPECT_EQ(c, nullptr);
}

TEST(ListenerAddress, TheDefaultIsTheFamilyOfThePlatformAndItsOwnAddress) {
  mproc_listener *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_listener_create(&a, ptr(mproc_listener_opts{})), 0) << mproc_last_error();
  ASSERT_EQ(mproc_listener_create(&b, ptr(mproc_listener_opts{})), 0) << mproc_last_error();
  EXPECT_EQ(mproc_listener_family(a), kWindows ? MPROC_FAMILY_PIPE : MPROC_FAMILY_UNIX);
  EXPECT_STRNE(mproc_listener_address(a), mproc_listener_address(b));
  mproc_listener_destroy(a);
  mproc_listener_destroy(b);
}

TEST(ListenerAddress, FamiliesThisSystemLacksAreENOTSUP) {
  mproc_listener *l = nullptr;
  const char *lacking = kWindows ? "/tmp/app.sock" : "\\\\.\\pipe\\app";
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = lacking})), MPROC_ENOTSUP);
  mproc_connection *c = nullptr;
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = lacking}), 0), MPROC_ENOTSUP);
#if !defined(__linux__)
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "@name"})), MPROC_ENOTSUP);
#endif
  EXPECT_EQ(l, nullptr);
  EXPECT_EQ(c, nullptr);
}

TEST(ListenerAddress, AuthkeysNeedTheCryptoThisBuildHas) {
  mproc_listener *l = nullptr;
  if (!kNoCrypto) { // the platform's crypto, or libcrypto: keys are taken
    ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.authkey = "k", .authkey_size = 1})), 0)
        << mproc_last_error();
    mproc_listener_destroy(l);
    return;
  }
  EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.authkey = "k", .authkey_size = 1})), MPROC_ENOTSUP);
  EXPECT_NE(std::string(mproc_last_error()).find("libcrypto"), std::string::npos) << mproc_last_error();
  mproc_connection *c = nullptr;
  EXPECT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = "127.0.0.1:1", .process_authkey = true}), 0),
            MPROC_ENOTSUP);
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  EXPECT_EQ(mproc_deliver_challenge(a, "k", 1, 0), MPROC_ENOTSUP);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
  // and without a key everything works as ever
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{})), 0) << mproc_last_error();
  mproc_listener_destroy(l);
}

// ---- the two halves of the handshake on any connection ------------------------------------------

TEST(Challenge, DeliverAndAnswerOverAPipe) {
  if (kNoCrypto) GTEST_SKIP() << "built without libcrypto";
  for (bool right : {true, false}) {
    SCOPED_TRACE(right);
    mproc_connection *a = nullptr, *b = nullptr;
    ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
    int answered = -1;
    std::thread t([&] { answered = mproc_answer_challenge(b, right ? kKey : kOtherKey, sizeof kKey, 20000); });
    EXPECT_EQ(mproc_deliver_challenge(a, kKey, sizeof kKey, 20000), right ? 0 : MPROC_EAUTH) << mproc_last_error();
    t.join();
    EXPECT_EQ(answered, right ? 0 : MPROC_EAUTH);
    mproc_connection_destroy(a);
    mproc_connection_destroy(b);
  }
}

TEST(Challenge, AnEmptyKeyIsAKey) {
  if (kNoCrypto) GTEST_SKIP() << "built without libcrypto";
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  int answered = -1;
  std::thread t([&] { answered = mproc_answer_challenge(b, "", 0, 20000); });
  EXPECT_EQ(mproc_deliver_challenge(a, "", 0, 20000), 0) << mproc_last_error();
  t.join();
  EXPECT_EQ(answered, 0);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

TEST(Challenge, AStalledPeerTimesOut) {
  if (kNoCrypto) GTEST_SKIP() << "built without libcrypto";
  mproc_connection *a = nullptr, *b = nullptr;
  ASSERT_EQ(mproc_pipe(true, &a, &b), 0);
  EXPECT_EQ(mproc_deliver_challenge(a, kKey, sizeof kKey, 100), MPROC_ETIMEDOUT);
  // the challenge is there, the answer goes out, but no verdict ever comes
  EXPECT_EQ(mproc_answer_challenge(b, kKey, sizeof kKey, 100), MPROC_ETIMEDOUT);
  mproc_connection_destroy(a);
  mproc_connection_destroy(b);
}

// ---- the process authkey -----------------------------------------------------------------------

namespace {

std::string my_key() {
  unsigned char k[MPROC_AUTHKEY_MAX];
  size_t n = 0;
  if (mproc_current_process_authkey(k, sizeof k, &n) != 0) return "<error>";
  return std::string((const char *)k, n);
}

// Child: send back its authkey.
int t_send_authkey(const mproc_args *a) {
  std::string k = my_key();
  return mproc_connection_send_bytes(a->connections[0], k.data(), k.size(), 0, MPROC_ALL) == 0 ? 0 : 1;
}

// Child: connect to the address given with this process's key, say who it is, get an answer, end.
int t_client_with_process_key(const mproc_args *a) {
  std::string addr((const char *)a->data, a->size);
  mproc_connection *c = nullptr;
  int rc = mproc_client(&c, ptr(mproc_client_opts{.address = addr.c_str(), .process_authkey = true}), 20000);
  if (rc) return rc == MPROC_EAUTH ? 7 : 8;
  std::string hello = std::string("child ") + mproc_current_process_name();
  mproc_connection_send_bytes(c, hello.data(), hello.size(), 0, MPROC_ALL);
  std::string back = recv_str(c);
  mproc_connection_destroy(c);
  return back == "welcome" ? 0 : 9;
}

// Child: answer what comes on the handed connection, in capitals, until an empty message.
int t_serve_handed(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  for (;;) {
    std::string m = recv_str(c);
    if (m.empty() || m[0] == '<') return m.empty() ? 0 : 1;
    for (auto &ch : m) ch = (char)toupper((unsigned char)ch);
    if (send_str(c, m) != 0) return 2;
  }
}

std::vector<mproc_start_method> methods() {
  if (kWindows) return {MPROC_START_SPAWN};
  return {MPROC_START_FORK, MPROC_START_SPAWN, MPROC_START_FORKSERVER};
}

class AuthkeyAcross : public ::testing::TestWithParam<mproc_start_method> {};

} // namespace

INSTANTIATE_TEST_SUITE_P(Methods, AuthkeyAcross, ::testing::ValuesIn(methods()),
                         [](const ::testing::TestParamInfo<mproc_start_method> &i) {
                           return std::string(mproc_start_method_name(i.param));
                         });

TEST(Authkey, TheMainProcessHas32RandomBytesThatStay) {
  std::string k = my_key();
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(my_key(), k);
  size_t n = 0;
  unsigned char small[4];
  EXPECT_EQ(mproc_current_process_authkey(small, sizeof small, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(n, 32u);
  EXPECT_EQ(mproc_current_process_authkey(nullptr, 0, nullptr), MPROC_EINVAL);
  EXPECT_EQ(mproc_current_process_set_authkey(nullptr, 3), MPROC_EINVAL);
  std::string big(MPROC_AUTHKEY_MAX + 1, 'k');
  EXPECT_EQ(mproc_current_process_set_authkey(big.data(), big.size()), MPROC_EINVAL);
  EXPECT_EQ(my_key(), k);
}

TEST_P(AuthkeyAcross, AChildHasItsCreatorsKeyOrTheOneGiven) {
  std::string mine = my_key();
  for (int given = 0; given < 2; ++given) {
    SCOPED_TRACE(given);
    mproc_connection *r = nullptr, *w = nullptr;
    ASSERT_EQ(mproc_pipe(false, &r, &w), 0);
    mproc_process *p = nullptr;
    const char custom[] = "a key of the child's own";
    mproc_process_opts o = {
        .target = t_send_authkey, .connections = &w, .connection_count = 1, .start_method = GetParam()};
    if (given) {
      o.authkey = custom;
      o.authkey_size = sizeof custom - 1;
    }
    ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
    ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
    mproc_connection_destroy(w);
    EXPECT_EQ(recv_str(r), given ? std::string(custom) : mine);
    EXPECT_EQ(mproc_process_join(p, 60000), 0);
    int code = -1;
    EXPECT_TRUE(mproc_process_exitcode(p, &code));
    EXPECT_EQ(code, 0);
    mproc_process_destroy(p);
    mproc_connection_destroy(r);
  }
  EXPECT_EQ(my_key(), mine); // the parent's stays
}

TEST_P(AuthkeyAcross, AListenerAndChildrenSharingTheProcessKey) {
  if (kNoCrypto) GTEST_SKIP() << "built without libcrypto";
  // A server with this process's key; children that inherited it connect; one given another key is
  // refused. The children are clients in other processes, the cross-process case of every family's test.
  mproc_listener *l = nullptr;
  const char *addr = kWindows ? nullptr : "127.0.0.1:0";
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = addr, .process_authkey = true})), 0)
      << mproc_last_error();
  std::string where = mproc_listener_address(l);
  for (int stranger = 0; stranger < 2; ++stranger) {
    SCOPED_TRACE(stranger);
    mproc_process *p = nullptr;
    mproc_process_opts o = {
        .target = t_client_with_process_key, .arg = where.data(), .arg_size = where.size(), .start_method = GetParam()};
    if (stranger) {
      o.authkey = kOtherKey;
      o.authkey_size = sizeof kOtherKey;
    }
    ASSERT_EQ(mproc_process_create(&p, &o), 0) << mproc_last_error();
    ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
    mproc_connection *s = nullptr;
    int rc = mproc_listener_accept(l, 60000, &s);
    if (stranger) {
      EXPECT_EQ(rc, MPROC_EAUTH) << mproc_last_error();
    } else {
      ASSERT_EQ(rc, 0) << mproc_last_error();
      EXPECT_EQ(recv_str(s).rfind("child Process-", 0), 0u);
      EXPECT_EQ(send_str(s, "welcome"), 0);
    }
    EXPECT_EQ(mproc_process_join(p, 60000), 0);
    int code = -1;
    EXPECT_TRUE(mproc_process_exitcode(p, &code));
    EXPECT_EQ(code, stranger ? 7 : 0);
    mproc_connection_destroy(s);
    mproc_process_destroy(p);
  }
  mproc_listener_destroy(l);
}

TEST_P(AuthkeyAcross, AnAcceptedConnectionIsHandedToAChild) {
  // A server that accepts and hands each client to a worker process (the way a server forks per client).
  mproc_listener *l = nullptr;
  ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "127.0.0.1:0"})), 0) << mproc_last_error();
  ClientThread client(mproc_listener_address(l), {});
  mproc_connection *s = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 20000, &s), 0) << mproc_last_error();
  client.join();
  ASSERT_EQ(client.rc, 0) << client.error;
  mproc_process *p = nullptr;
  ASSERT_EQ(
      mproc_process_create(
          &p, ptr(mproc_process_opts{
                  .target = t_serve_handed, .connections = &s, .connection_count = 1, .start_method = GetParam()})),
      0)
      << mproc_last_error();
  ASSERT_EQ(mproc_process_start(p), 0) << mproc_last_error();
  mproc_connection_destroy(s); // the worker has its own
  EXPECT_EQ(send_str(client.c, "served by a child"), 0);
  EXPECT_EQ(recv_str(client.c), "SERVED BY A CHILD");
  EXPECT_EQ(send_str(client.c, ""), 0);
  EXPECT_EQ(mproc_process_join(p, 60000), 0);
  int code = -1;
  EXPECT_TRUE(mproc_process_exitcode(p, &code));
  EXPECT_EQ(code, 0);
  mproc_process_destroy(p);
  mproc_listener_destroy(l);
}
