// Large messages through shared memory on a Pipe() (src/connection_shm.c; Linux): boundaries around the
// thresholds and across the ring's end, readiness, a sender that a reader never empties, readers and
// senders killed mid-stream, ends handed to spawn children with their rings, and nothing left behind.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

namespace {

const int64_t kLong = 60000;
const size_t kMiB = size_t(1) << 20;

std::vector<char> pattern(size_t n, unsigned seed) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (char)((i * 131 + seed * 7919 + (i >> 12)) & 0xFF);
  return v;
}

// This process's open descriptors that are mproc's shared blocks (memfds), and all of them.
int count_fds(bool memfd_only) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char path[300], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t k = readlink(path, target, sizeof target - 1);
    if (k < 0) continue;
    target[k] = '\0';
    if (!memfd_only || strstr(target, "memfd:mproc")) ++n;
  }
  closedir(d);
  return n - (memfd_only ? 0 : 1); // the directory's own descriptor
}
// The mappings of mproc's shared blocks in this process.
int count_maps() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.find("memfd:mproc") != std::string::npos) ++n;
  return n;
}

// The sizes of the mappings of mproc's shared blocks in this process.
std::vector<size_t> map_sizes() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  std::vector<size_t> v;
  while (std::getline(in, line)) {
    unsigned long long lo = 0, hi = 0;
    if (line.find("memfd:mproc") != std::string::npos && sscanf(line.c_str(), "%llx-%llx", &lo, &hi) == 2)
      v.push_back((size_t)(hi - lo));
  }
  return v;
}

using mproc_test::PipePair;

// A fork child running target with these connections, started; the parent closes its copies of
// `close_here` (so the child holds the only ones).
mproc_process *fork_child(mproc_target target, std::vector<mproc_connection *> conns, mproc_connection *close_here) {
  mproc_process_opts o{};
  o.target = target;
  o.connections = conns.data();
  o.connection_count = conns.size();
  o.start_method = MPROC_START_FORK;
  mproc_process *proc = nullptr;
  EXPECT_EQ(mproc_process_create(&proc, &o), 0) << mproc_last_error();
  if (!proc) return nullptr;
  EXPECT_EQ(mproc_process_start(proc), 0) << mproc_last_error();
  if (close_here) mproc_connection_close(close_here);
  return proc;
}

bool recv_check(mproc_connection *c, size_t want, unsigned seed, bool into = false) {
  size_t n = 0;
  char *m = nullptr;
  std::vector<char> buf;
  if (into) {
    buf.resize(want + 10);
    int rc = mproc_connection_recv_bytes_into(c, buf.data(), buf.size(), kLong, &n);
    EXPECT_EQ(rc, 0) << mproc_last_error();
    if (rc) return false;
    m = buf.data();
  } else {
    int rc = mproc_connection_recv_bytes(c, 0, kLong, &m, &n);
    EXPECT_EQ(rc, 0) << mproc_last_error();
    if (rc) return false;
  }
  auto v = pattern(want, seed);
  bool ok = n == want && (want == 0 || memcmp(m, v.data(), want) == 0);
  EXPECT_TRUE(ok) << "message " << seed << ": " << n << " bytes, " << want << " wanted";
  if (!into) mproc_free(m);
  return ok;
}

// Sizes around the shared-memory threshold (1 MiB) and the ring's size (4 MiB: above it, the socket),
// small ones between, and enough of them that payloads cross the ring's end; both ways at once.
void boundaries(bool duplex) {
  SCOPED_TRACE(duplex ? "duplex" : "one-way");
  PipePair p(duplex);
  if (!duplex) std::swap(p.a, p.b); // a sends, b receives
  std::vector<size_t> sizes = {kMiB - 1, kMiB,          kMiB + 1, 0,         3,         4 * kMiB - 1,
                               4 * kMiB, 4 * kMiB + 1,  5,        kMiB + 63, kMiB + 64, kMiB + 65,
                               2 * kMiB, 3 * kMiB + 17, 49152};
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) sizes.push_back(kMiB + rng() % (3 * kMiB + 1));
  std::thread sender([&] {
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto v = pattern(sizes[i], (unsigned)i);
      ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0) << mproc_last_error();
    }
  });
  std::thread back; // the other direction at the same time
  if (duplex)
    back = std::thread([&] {
      for (unsigned i = 0; i < 12; ++i) {
        auto v = pattern(2 * kMiB + i, 1000 + i);
        ASSERT_EQ(mproc_connection_send_bytes(p.b, v.data(), v.size(), 0, MPROC_ALL), 0) << mproc_last_error();
      }
    });
  for (size_t i = 0; i < sizes.size(); ++i) ASSERT_TRUE(recv_check(p.b, sizes[i], (unsigned)i, i % 2 == 1));
  if (duplex) {
    for (unsigned i = 0; i < 12; ++i) ASSERT_TRUE(recv_check(p.a, 2 * kMiB + i, 1000 + i));
  }
  sender.join();
  if (back.joinable()) back.join();
}

TEST(ConnectionShm, BoundariesAroundTheThresholdsAndAcrossTheRingsEnd) {
  boundaries(true);
  boundaries(false);
}

// The large messages did go through shared memory: a memfd appears with the first one (one ring per
// direction that sent one), and every descriptor and mapping goes with the connection.
TEST(ConnectionShm, RingsComeWithTheFirstLargeMessageAndGoWithTheConnection) {
  int fds0 = count_fds(false), maps0 = count_maps();
  {
    PipePair p;
    auto v = pattern(kMiB - 1, 1);
    ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0);
    ASSERT_TRUE(recv_check(p.b, v.size(), 1));
    EXPECT_EQ(count_fds(true), 0) << "below the threshold: no ring";
    auto w = pattern(kMiB, 2);
    ASSERT_EQ(mproc_connection_send_bytes(p.a, w.data(), w.size(), 0, MPROC_ALL), 0);
    EXPECT_EQ(count_fds(true), 1) << "the sender's ring";
    EXPECT_EQ(mproc_connection_poll(p.b, 0), 0) << "ready: its header is on the pipe";
    ASSERT_TRUE(recv_check(p.b, w.size(), 2));
    EXPECT_EQ(count_fds(true), 2) << "and the receiver's copy";
    ASSERT_EQ(mproc_connection_send_bytes(p.b, w.data(), w.size(), 0, MPROC_ALL), 0);
    ASSERT_TRUE(recv_check(p.a, w.size(), 2));
    EXPECT_EQ(count_fds(true), 4);
    EXPECT_EQ(count_maps(), maps0 + 4);
    EXPECT_EQ(mproc_connection_poll(p.b, 0), MPROC_ETIMEDOUT);
  }
  EXPECT_EQ(count_fds(false), fds0);
  EXPECT_EQ(count_maps(), maps0);
}

// A receive with a deadline honours it whole: nothing sent, it times out; the message sent then
// arrives whole. A receive refused for its size keeps the message, which a later one takes.
TEST(ConnectionShm, DeadlinesAndRefusalsKeepTheMessageWhole) {
  PipePair p;
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, 50, &m, &n), MPROC_ETIMEDOUT);
  auto v = pattern(3 * kMiB, 4);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0);
  char small[8];
  EXPECT_EQ(mproc_connection_recv_bytes_into(p.b, small, sizeof small, 0, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(n, v.size());
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, kMiB, 0, &m, &n), MPROC_EMSGSIZE);
  EXPECT_EQ(mproc_connection_poll(p.b, 0), 0);
  ASSERT_TRUE(recv_check(p.b, v.size(), 4));
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, 0, &m, &n), MPROC_ETIMEDOUT);
}

// ---- other processes ----------------------------------------------------------------------------

// A reader that never reads: it holds its end until told to end (a byte on its second connection).
int t_never_reads(const mproc_args *a) {
  char *m = nullptr;
  size_t n = 0;
  (void)mproc_connection_recv_bytes(a->connections[1], 0, MPROC_INFINITE, &m, &n);
  mproc_free(m);
  return 0;
}

// The sender fills the ring of a reader that never reads: the sends that fit return, the next waits
// (as on a full socket), and it fails with MPROC_EPIPE once the reader is killed: never wedged.
TEST(ConnectionShm, ASenderWaitingForAReaderThatIsKilledGetsBrokenPipe) {
  PipePair p, ctl;
  mproc_process *proc = fork_child(t_never_reads, {p.b, ctl.b}, p.b); // it holds the only receiving end
  ASSERT_NE(proc, nullptr);
  auto v = pattern(kMiB, 5);
  std::atomic<int> sent{0};
  int last = 0;
  std::thread sender([&] {
    for (int i = 0; i < 64; ++i) {
      last = mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL);
      if (last) return;
      sent.fetch_add(1);
    }
  });
  // four fit the ring (1 MiB each); wait for them through the sender's progress, then kill
  while (sent.load() < 4) std::this_thread::yield();
  ASSERT_EQ(mproc_process_kill(proc), 0);
  sender.join();
  EXPECT_EQ(sent.load(), 4) << "a fifth send cannot have found room";
  EXPECT_EQ(last, MPROC_EPIPE) << mproc_last_error();
  EXPECT_EQ(mproc_process_join(proc, kLong), 0);
  mproc_process_destroy(proc);
}

// A reader that reads and acknowledges each message's checksum, forever.
int t_reader(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  for (;;) {
    char *m = nullptr;
    size_t n = 0;
    if (mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &m, &n) != 0) return 1;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 4096) sum += (unsigned char)m[i];
    mproc_free(m);
    if (mproc_connection_send_bytes(c, &sum, sizeof sum, 0, MPROC_ALL) != 0) return 2;
  }
}

// Rounds of a fork child running target on the far end of a Pipe, killed (kill -9) before a random
// step of the parent's loop; step(c, i) on the near end gives 0 to go on; each round's loop must end with
// one of `want`; the code each round ended with.
std::vector<int> kill_rounds(unsigned seed, mproc_target target, std::vector<int> want,
                             const std::function<int(mproc_connection *, unsigned)> &step) {
  std::mt19937 rng(seed);
  std::vector<int> ends;
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(round);
    PipePair p;
    mproc_process *proc = fork_child(target, {p.b}, p.b);
    EXPECT_NE(proc, nullptr);
    if (!proc) return ends;
    unsigned kill_after = rng() % 16;
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < 100000; ++i) {
      if (i == kill_after) {
        EXPECT_EQ(mproc_process_kill(proc), 0);
      }
      rc = step(p.a, i);
    }
    EXPECT_NE(std::find(want.begin(), want.end(), rc), want.end()) << rc << ": " << mproc_last_error();
    ends.push_back(rc);
    EXPECT_EQ(mproc_process_join(proc, kLong), 0);
    mproc_process_destroy(proc);
  }
  return ends;
}

size_t nth_size(unsigned i) { return kMiB + (i * 40503u) % (3 * kMiB); }

// A reader killed at random moments while large messages stream to it: the sender ends with
// MPROC_EPIPE every time (a reader killed mid-copy holds room it never gives back), never wedged.
TEST(ConnectionShm, AReaderKilledMidStreamNeverWedgesTheSender) {
  kill_rounds(11, t_reader, {MPROC_EPIPE}, [](mproc_connection *c, unsigned i) {
    auto v = pattern(nth_size(i), i);
    return mproc_connection_send_bytes(c, v.data(), v.size(), 0, MPROC_ALL);
  });
}

// Receive a streamer's message i (of size_of(i) bytes) and check it: 0, the receive's error, or -1 (wrong).
int recv_nth(mproc_connection *c, unsigned i, size_t (*size_of)(unsigned)) {
  char *m = nullptr;
  size_t n = 0;
  int rc = mproc_connection_recv_bytes(c, 0, kLong, &m, &n);
  if (rc) return rc;
  auto v = pattern(size_of(i), i);
  bool ok = n == v.size() && memcmp(m, v.data(), n) == 0;
  mproc_free(m);
  EXPECT_TRUE(ok) << "message " << i << " of " << n << " bytes";
  return ok ? 0 : -1;
}

// A sender that streams numbered large messages until killed.
int t_streamer(const mproc_args *a) {
  for (unsigned i = 0;; ++i) {
    auto v = pattern(nth_size(i), i);
    if (mproc_connection_send_bytes(a->connections[0], v.data(), v.size(), 0, MPROC_ALL) != 0) return 1;
  }
}

// A sender killed at random moments: every message the reader gets is whole and right, then end of
// file; never part of one, never garbage, never a hang.
TEST(ConnectionShm, ASenderKilledMidStreamLeavesWholeMessagesThenEndOfFile) {
  kill_rounds(13, t_streamer, {MPROC_EEOF}, [](mproc_connection *c, unsigned i) { return recv_nth(c, i, nth_size); });
}

// A fork child given the sending end before any large message: it sets up a ring of its own, then
// sends again after its parent, whose copy of the end set up another, has sent.
int t_second_sender(const mproc_args *a) {
  auto v = pattern(2 * kMiB, 40);
  if (mproc_connection_send_bytes(a->connections[0], v.data(), v.size(), 0, MPROC_ALL) != 0) return 1;
  char *m = nullptr;
  size_t n = 0;
  if (mproc_connection_recv_bytes(a->connections[1], 0, kLong, &m, &n) != 0) return 2; // the go
  mproc_free(m);
  auto w = pattern(3 * kMiB, 42);
  return mproc_connection_send_bytes(a->connections[0], w.data(), w.size(), 0, MPROC_ALL) != 0 ? 3 : 0;
}

TEST(ConnectionShm, TwoCopiesOfASendingEndEachWithARingTakeTurns) {
  PipePair p, ctl;
  mproc_process *proc = fork_child(t_second_sender, {p.a, ctl.b}, nullptr);
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(recv_check(p.b, 2 * kMiB, 40)); // through the child's ring
  auto v = pattern(kMiB + 5, 41);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0) << mproc_last_error();
  ASSERT_TRUE(recv_check(p.b, v.size(), 41)); // through the parent's
  ASSERT_EQ(mproc_connection_send_bytes(ctl.a, "go", 2, 0, MPROC_ALL), 0);
  ASSERT_TRUE(recv_check(p.b, 3 * kMiB, 42)); // the child's again
  EXPECT_EQ(mproc_test::join_child(proc, kLong), 0);
  ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0) << mproc_last_error();
  ASSERT_TRUE(recv_check(p.b, v.size(), 41)); // and the parent's
}

// A child that echoes as many messages as its argument says (an int), then checks that it holds two
// rings: given an end whose rings exist both ways, it receives through the ring its parent mapped and
// answers through the ring the parent's end set up, setting nothing new up; given a fresh end, it maps
// its parent's ring and sets up its own.
int t_echo_big(const mproc_args *a) {
  mproc_connection *c = a->connections[0];
  int count = 0;
  if (a->size != sizeof count) return 4;
  memcpy(&count, a->data, sizeof count);
  for (int i = 0; i < count; ++i) {
    char *m = nullptr;
    size_t n = 0;
    if (mproc_connection_recv_bytes(c, 0, kLong, &m, &n) != 0) return 1;
    int rc = mproc_connection_send_bytes(c, m, n, 0, MPROC_ALL);
    mproc_free(m);
    if (rc) return 2;
  }
  return count_fds(true) == 2 ? 0 : 3;
}

TEST(ConnectionShm, AnEndHandedToASpawnChildKeepsItsRings) {
  for (mproc_start_method method : {MPROC_START_SPAWN, MPROC_START_FORKSERVER}) {
    SCOPED_TRACE(mproc_start_method_name(method));
    PipePair p;
    // both rings exist, and the end to hand has mapped the one it receives through
    auto v = pattern(2 * kMiB, 6);
    ASSERT_EQ(mproc_connection_send_bytes(p.a, v.data(), v.size(), 0, MPROC_ALL), 0);
    ASSERT_TRUE(recv_check(p.b, v.size(), 6));
    ASSERT_EQ(mproc_connection_send_bytes(p.b, v.data(), v.size(), 0, MPROC_ALL), 0);
    ASSERT_TRUE(recv_check(p.a, v.size(), 6));
    int count = 6;
    mproc_process *proc = mproc_test::start_child(t_echo_big, {mproc_object_make(MPROC_OBJECT_CONNECTION, p.b)}, &count,
                                                  sizeof count, method);
    ASSERT_NE(proc, nullptr);
    for (unsigned i = 0; i < 6; ++i) { // more than the ring holds, so room is given back across processes
      auto w = pattern(kMiB + i * 100003u, 20 + i);
      ASSERT_EQ(mproc_connection_send_bytes(p.a, w.data(), w.size(), 0, MPROC_ALL), 0) << mproc_last_error();
      ASSERT_TRUE(recv_check(p.a, w.size(), 20 + i));
    }
    EXPECT_EQ(mproc_test::join_child(proc, kLong), 0);
  }
}

// ---- messages above the ring: streamed through it -------------------------------------------------

int send_pattern(mproc_connection *c, size_t n, unsigned seed) {
  auto v = pattern(n, seed);
  return mproc_connection_send_bytes(c, v.data(), v.size(), 0, MPROC_ALL);
}

// Messages above the ring's 4 MiB (up to 64 MiB) stream through it whole and right, among smaller ones
// (through the ring whole, or the pipe), both ways at once, received with recv_bytes and
// recv_bytes_into; the rings stay one per direction, of their fixed size, and go with the connection.
TEST(ConnectionShm, MessagesAboveTheRingStreamThroughItWholeAndRightBothWays) {
  int fds0 = count_fds(false), maps0 = count_maps();
  {
    PipePair q; // the first message on a connection, above the ring, sets it up: it takes no other way
    std::thread s5([&] { ASSERT_EQ(send_pattern(q.a, 5 * kMiB, 1), 0) << mproc_last_error(); });
    EXPECT_TRUE(recv_check(q.b, 5 * kMiB, 1));
    s5.join();
    EXPECT_EQ(count_fds(true), 2) << "the sender's ring and the receiver's copy";
  }
  {
    PipePair p;
    std::vector<size_t> ab = {4 * kMiB + 1, 5 * kMiB - 1,  2 * kMiB,      16 * kMiB,     7, 4 * kMiB, 8 * kMiB + 3,
                              kMiB,         4 * kMiB + 64, 64 * kMiB + 7, 16 * kMiB + 65};
    std::vector<size_t> ba = {16 * kMiB + 1, 3, 4 * kMiB + 1, 3 * kMiB, 12 * kMiB - 5, 4 * kMiB};
    std::thread sa([&] {
      for (size_t i = 0; i < ab.size(); ++i) ASSERT_EQ(send_pattern(p.a, ab[i], (unsigned)i), 0) << mproc_last_error();
    });
    std::thread sb([&] {
      for (size_t i = 0; i < ba.size(); ++i)
        ASSERT_EQ(send_pattern(p.b, ba[i], 100 + (unsigned)i), 0) << mproc_last_error();
    });
    std::thread rb([&] {
      for (size_t i = 0; i < ab.size(); ++i) ASSERT_TRUE(recv_check(p.b, ab[i], (unsigned)i, i % 2 == 1));
    });
    for (size_t i = 0; i < ba.size(); ++i) EXPECT_TRUE(recv_check(p.a, ba[i], 100 + (unsigned)i, i % 2 == 0));
    rb.join();
    sa.join();
    sb.join();
    EXPECT_EQ(count_fds(true), 4) << "one ring each way, mapped at both ends";
    for (size_t sz : map_sizes()) EXPECT_EQ(sz, 4 * kMiB + 4096) << "a ring grew";
    EXPECT_EQ(mproc_connection_poll(p.a, 0), MPROC_ETIMEDOUT);
    EXPECT_EQ(mproc_connection_poll(p.b, 0), MPROC_ETIMEDOUT);
  }
  EXPECT_EQ(count_fds(false), fds0);
  EXPECT_EQ(count_maps(), maps0);
}

// A child that sends two 16 MiB messages.
int t_two_streams(const mproc_args *a) {
  for (unsigned i = 0; i < 2; ++i)
    if (send_pattern(a->connections[0], 16 * kMiB + i, 60 + i) != 0) return 1;
  return 0;
}

// Stop a child (SIGSTOP) and wait until it has stopped.
bool stop_child(mproc_process *proc) {
  pid_t pid = (pid_t)mproc_process_pid(proc);
  siginfo_t si{};
  return kill(pid, SIGSTOP) == 0 && waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOWAIT) == 0;
}

// A receive whose deadline expires inside a streamed message keeps what came, as on the byte streams:
// readiness then says nothing more is there (poll, mproc_wait), and the next receive continues the
// message and gets it whole (recv_bytes, then recv_bytes_into).
TEST(ConnectionShm, AReceiveWhoseDeadlineExpiresMidStreamIsContinuedByTheNext) {
  PipePair p;
  mproc_process *proc = fork_child(t_two_streams, {p.a}, p.a);
  ASSERT_NE(proc, nullptr);
  for (unsigned i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    // the child fills the ring (4 of the 16 MiB) and waits for room; stopped, it sends no more, so a
    // receive takes what the ring holds and times out inside the message
    ASSERT_EQ(mproc_connection_poll(p.b, kLong), 0);
    ASSERT_TRUE(stop_child(proc));
    char *m = nullptr;
    size_t n = 0;
    std::vector<char> buf(16 * kMiB + 10);
    int rc = i == 0 ? mproc_connection_recv_bytes(p.b, 0, 100, &m, &n)
                    : mproc_connection_recv_bytes_into(p.b, buf.data(), buf.size(), 100, &n);
    EXPECT_EQ(rc, MPROC_ETIMEDOUT);
    EXPECT_NE(strstr(mproc_last_error(), "had not arrived whole"), nullptr) << mproc_last_error();
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(mproc_connection_poll(p.b, 0), MPROC_ETIMEDOUT) << "nothing more came";
    mproc_waitable w = mproc_waitable_connection(p.b);
    size_t nready = 0;
    EXPECT_EQ(mproc_wait(&w, 1, 0, &nready), MPROC_ETIMEDOUT);
    ASSERT_EQ(kill((pid_t)mproc_process_pid(proc), SIGCONT), 0);
    EXPECT_EQ(mproc_wait(&w, 1, kLong, &nready), 0);
    EXPECT_TRUE(w.ready);
    ASSERT_TRUE(recv_check(p.b, 16 * kMiB + i, 60 + i, i == 1));
  }
  EXPECT_EQ(mproc_test::join_child(proc, kLong), 0);
}

size_t nth_stream_size(unsigned i) { return 4 * kMiB + 1 + (i * 2654435761u) % (12 * kMiB); }

// A sender that streams numbered messages above the ring until killed.
int t_big_streamer(const mproc_args *a) {
  for (unsigned i = 0;; ++i)
    if (send_pattern(a->connections[0], nth_stream_size(i), i) != 0) return 1;
}

// A sender killed at random moments while it streams messages above the ring: every message the reader
// gets is whole and right; then end of file (killed between messages) or, killed inside one, an error
// that every later receive repeats (the peer closed in the middle of a message, as on the byte
// streams); never garbage, never a hang.
TEST(ConnectionShm, ASenderKilledMidStreamGivesAnErrorNeverGarbageNorAHang) {
  auto ends = kill_rounds(17, t_big_streamer, {MPROC_EEOF, MPROC_ESYS}, [](mproc_connection *c, unsigned i) {
    int rc = recv_nth(c, i, nth_stream_size);
    if (rc == MPROC_ESYS) {
      EXPECT_NE(strstr(mproc_last_error(), "in the middle of a message"), nullptr) << mproc_last_error();
      char *m = nullptr;
      size_t n = 0;
      EXPECT_EQ(mproc_connection_recv_bytes(c, 0, kLong, &m, &n), MPROC_ESYS);
    }
    return rc;
  });
  EXPECT_NE(std::find(ends.begin(), ends.end(), MPROC_ESYS), ends.end()) << "no sender was killed inside a message";
}

// A reader killed at random moments while messages above the ring stream to it: the sender ends with
// MPROC_EPIPE every time, never wedged.
TEST(ConnectionShm, AReaderKilledMidStreamNeverWedgesTheStreamingSender) {
  kill_rounds(19, t_reader, {MPROC_EPIPE},
              [](mproc_connection *c, unsigned i) { return send_pattern(c, nth_stream_size(i), i); });
}

// A fork child sharing its parent's sending end and ring: it starts a 16 MiB message that no one reads.
int t_big_unread(const mproc_args *a) { return send_pattern(a->connections[0], 16 * kMiB, 70) != 0 ? 1 : 0; }

// A copy of a sending end killed inside a streamed message while its parent's copy sends on: the cut
// message is dropped with an error (its rest would be the next message's bytes: never garbage), and the
// receiver goes on with the parent's messages, whole.
TEST(ConnectionShm, AStreamCutByTheDeathOfACopyOfItsEndIsDroppedAndTheNextMessageComesWhole) {
  PipePair p;
  ASSERT_EQ(send_pattern(p.a, kMiB, 71), 0); // the ring exists before the fork: the child shares it
  ASSERT_TRUE(recv_check(p.b, kMiB, 71));
  mproc_process *proc = fork_child(t_big_unread, {p.a}, nullptr);
  ASSERT_NE(proc, nullptr);
  ASSERT_EQ(mproc_connection_poll(p.b, kLong), 0); // its first chunk's frame came; it cannot send all
  ASSERT_EQ(mproc_process_kill(proc), 0);
  ASSERT_EQ(mproc_process_join(proc, kLong), 0);
  std::thread sender([&] {
    ASSERT_EQ(send_pattern(p.a, 2 * kMiB, 72), 0) << mproc_last_error();
    ASSERT_EQ(send_pattern(p.a, 16 * kMiB + 3, 73), 0) << mproc_last_error();
  });
  char *m = nullptr;
  size_t n = 0;
  EXPECT_EQ(mproc_connection_recv_bytes(p.b, 0, kLong, &m, &n), MPROC_ESYS);
  EXPECT_NE(strstr(mproc_last_error(), "dropped"), nullptr) << mproc_last_error();
  EXPECT_TRUE(recv_check(p.b, 2 * kMiB, 72));
  EXPECT_TRUE(recv_check(p.b, 16 * kMiB + 3, 73));
  sender.join();
  mproc_process_destroy(proc);
}

// A spawn or forkserver child given a fresh end (t_echo_big): messages above the ring stream both ways
// through the rings each side sets up.
TEST(ConnectionShm, AnEndHandedToAChildStreamsBothWays) {
  for (mproc_start_method method : {MPROC_START_SPAWN, MPROC_START_FORKSERVER}) {
    SCOPED_TRACE(mproc_start_method_name(method));
    PipePair p;
    int count = 3;
    mproc_process *proc = mproc_test::start_child(t_echo_big, {mproc_object_make(MPROC_OBJECT_CONNECTION, p.b)}, &count,
                                                  sizeof count, method);
    ASSERT_NE(proc, nullptr);
    const size_t sizes[] = {16 * kMiB + 5, 4 * kMiB + 1, 9 * kMiB};
    for (unsigned i = 0; i < 3; ++i) {
      ASSERT_EQ(send_pattern(p.a, sizes[i], 80 + i), 0) << mproc_last_error();
      ASSERT_TRUE(recv_check(p.a, sizes[i], 80 + i));
    }
    EXPECT_EQ(mproc_test::join_child(proc, kLong), 0);
  }
}

} // namespace
