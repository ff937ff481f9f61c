// Process trees and parent death in tests (subprocess_tree_test.cc, subprocess_tree_posix.cc): watching
// processes through handles opened while they lived, reading pid lines, and the intermediate process
// that starts a program with kill_on_parent_death and is then killed hard.
#ifndef MPROC_TREE_UTIL_H
#define MPROC_TREE_UTIL_H

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "mproc.h"
#include "test_util.h"

#ifndef _WIN32
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace mproc_test {

// A process watched through a handle opened while it lived: whether it has ended, without being its
// parent and without trusting its pid afterwards.
class Watch {
 public:
  explicit Watch(long long pid) : pid_(pid) {
#ifdef _WIN32
    h_ = OpenProcess(SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
#elif defined(SYS_pidfd_open)
    fd_ = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#endif
  }
  ~Watch() {
    if (!ended(0)) kill_it(); // a test that failed leaves nothing running
#ifdef _WIN32
    if (h_) CloseHandle(h_);
#else
    if (fd_ >= 0) close(fd_);
#endif
  }
  Watch(const Watch &) = delete;
  Watch &operator=(const Watch &) = delete;
  bool valid() const {
#ifdef _WIN32
    return h_ != nullptr;
#else
    return fd_ >= 0;
#endif
  }
  long long pid() const { return pid_; }
  // Whether it has ended, waiting up to timeout_ms for it.
  bool ended(int timeout_ms) const {
    if (!valid()) return true;
#ifdef _WIN32
    return WaitForSingleObject(h_, (DWORD)timeout_ms) == WAIT_OBJECT_0;
#else
    struct pollfd p = {fd_, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1;
#endif
  }
  void kill_it() const {
#ifdef _WIN32
    if (h_) TerminateProcess(h_, 1);
#elif defined(SYS_pidfd_send_signal)
    if (fd_ >= 0) syscall(SYS_pidfd_send_signal, fd_, SIGKILL, nullptr, 0);
#endif
  }

 private:
  long long pid_;
#ifdef _WIN32
  HANDLE h_ = nullptr;
#else
  int fd_ = -1;
#endif
};

inline bool watches_work() {
#ifdef _WIN32
  return true;
#elif defined(SYS_pidfd_open)
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (fd < 0) return false;
  close(fd);
  return true;
#else
  return false;
#endif
}

// Read stdout of p until it holds n lines; the lines (without their newlines).
inline std::vector<std::string> read_lines(mproc_popen *p, size_t n, int64_t timeout_ms = 60000) {
  std::string text;
  std::vector<std::string> lines;
  int64_t left = timeout_ms;
  while (lines.size() < n && left > 0) {
    char buf[256];
    size_t got = 0;
    int rc = mproc_popen_read(p, 1, buf, sizeof buf, left, &got);
    if (rc != 0 || got == 0) break;
    text.append(buf, got);
    size_t nl;
    while ((nl = text.find('\n')) != std::string::npos) {
      lines.push_back(text.substr(0, nl));
      text.erase(0, nl + 1);
    }
  }
  return lines;
}

inline std::vector<long long> to_pids(const std::vector<std::string> &lines) {
  std::vector<long long> pids;
  for (auto &l : lines) pids.push_back(std::stoll(l));
  return pids;
}

#define NEED_WATCHES()                                                                   \
  do {                                                                                   \
    if (!mproc_test::watches_work()) GTEST_SKIP() << "no pidfd here to watch processes"; \
  } while (0)

// ---- kill on parent death: an intermediate process starts the program, then is killed hard ----------------

// The intermediate's target (it runs in a spawned copy of the test program). Its argument: "<tree 0|1>
// <thread 0|1> <program>": start `program` (the helper, or a copy of it) with kill_on_parent_death (and
// process_tree) from the main thread, or from a thread of its own that ends once the program runs; make
// sure the program outlived that thread (it echoes a byte); send the test what the program printed
// ("ppid=<its parent>,<its pid>" and its child's pid, a line each); then wait to be killed.
inline int parent_death_target(const mproc_args *a) {
  std::string arg((const char *)a->data, a->size);
  bool tree = arg[0] == '1', thread = arg[2] == '1';
  std::string program = arg.substr(4);
  mproc_connection *c = a->connections[0];
  const char *argv[] = {program.c_str(), "print", "ppid=", "ppid",  "print", ",",    "pidln",
                        "child",         "pidln", "sleep", "60000", "end",   "echo", nullptr};
  mproc_popen *p = nullptr;
  std::string report;
  auto start = [&] {
    mproc_popen_opts o{};
    o.argv = argv;
    o.stdin_mode = o.stdout_mode = MPROC_PIPE;
    o.process_tree = tree;
    o.kill_on_parent_death = true;
    if (mproc_popen_create(&p, &o) != 0) {
      report = std::string("error: ") + mproc_last_error();
      return;
    }
    for (auto &l : read_lines(p, 2)) report += l + "\n";
  };
  if (thread) {
    std::thread t(start);
    t.join();
  } else {
    start();
  }
  if (p) { // the program still answers now that the thread that started it has ended
    size_t n = 0;
    char b = 0;
    if (mproc_popen_write(p, "x", 1, 60000, &n) != 0 || mproc_popen_read(p, 1, &b, 1, 60000, &n) != 0 || b != 'x')
      report = "error: the program did not echo: " + std::string(mproc_last_error());
  }
  mproc_connection_send_bytes(c, report.data(), report.size(), 0, MPROC_ALL);
  char *m = nullptr;
  size_t n = 0;
  mproc_connection_recv_bytes(c, 0, MPROC_INFINITE, &m, &n); // until killed
  return 0;
}

// What the test learnt from the intermediate before it killed it.
struct ParentDeath {
  long long mid = 0, ppid = 0;      // the intermediate's pid; the program's parent's
  std::unique_ptr<Watch> prog, kid; // the program and its child
  std::string error;
};

// Start the intermediate (spawn), take its report and watch the program and its child, kill the
// intermediate hard and reap it. The caller then checks the watches.
inline ParentDeath kill_parent_of(bool tree, bool thread, const std::string &program) {
  ParentDeath r;
  mproc_connection *ours = nullptr, *theirs = nullptr;
  if (mproc_pipe(true, &ours, &theirs) != 0) {
    r.error = mproc_last_error();
    return r;
  }
  std::string arg = std::string(tree ? "1" : "0") + " " + (thread ? "1" : "0") + " " + program;
  mproc_process_opts po{};
  po.target = parent_death_target;
  po.arg = arg.data();
  po.arg_size = arg.size();
  po.connections = &theirs;
  po.connection_count = 1;
  po.start_method = MPROC_START_SPAWN;
  mproc_process *mid = nullptr;
  if (mproc_process_create(&mid, &po) != 0 || mproc_process_start(mid) != 0) {
    r.error = mproc_last_error();
  } else {
    r.mid = mproc_process_pid(mid);
    char *m = nullptr;
    size_t n = 0;
    if (mproc_connection_recv_bytes(ours, 0, 120000, &m, &n) != 0) {
      r.error = mproc_last_error();
    } else {
      std::string report(m, n);
      mproc_free(m);
      // "ppid=<parent>,<pid>\n<child's pid>\n" (no sscanf: MSVC deprecates it)
      size_t comma = report.find(','), nl = report.find('\n');
      long long pid = 0, kid = 0;
      if (report.rfind("ppid=", 0) == 0 && comma != std::string::npos && nl != std::string::npos && nl > comma) {
        r.ppid = std::atoll(report.c_str() + 5);
        pid = std::atoll(report.c_str() + comma + 1);
        kid = std::atoll(report.c_str() + nl + 1);
      }
      if (r.ppid <= 0 || pid <= 0 || kid <= 0) {
        r.error = "report: " + report;
      } else {
        r.prog = std::make_unique<Watch>(pid);
        r.kid = std::make_unique<Watch>(kid);
        if (r.prog->ended(0) || r.kid->ended(0)) r.error = "the program or its child ended before its parent";
      }
    }
    mproc_process_kill(mid);
    mproc_process_join(mid, MPROC_INFINITE);
  }
  mproc_process_destroy(mid);
  mproc_connection_destroy(ours);
  mproc_connection_destroy(theirs);
  return r;
}

} // namespace mproc_test

#endif
