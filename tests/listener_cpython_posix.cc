// Listener / Client against the real CPython (multiprocessing.connection): a Python Client against an
// mproc Listener and the reverse, over a Unix socket path, a Linux abstract socket and TCP, with right,
// wrong and missing keys; every digest a Python 3.12+ listener may challenge with; and Python 3.11's
// legacy HMAC-MD5 handshake, refused unless asked for.
//
// The interpreters: Python 3.12 or later from $MPROC_PYTHON, else the newest pyenv version, else
// python3 on PATH; Python 3.11 (or older) from $MPROC_PYTHON_LEGACY, else pyenv, else python3 on PATH
// (Debian 12's). A test whose interpreter is missing is skipped, saying which.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "mproc.h"
#include "test_util.h"

using mproc_test::ptr;

namespace {

// ---- finding the interpreters ------------------------------------------------------------------------

// Its minor version (3.x), or -1 when it cannot be run.
int minor_of(const std::string &python) {
  const char *argv[] = {python.c_str(), "-c", "import sys; print(sys.version_info[0] * 100 + sys.version_info[1])",
                        nullptr};
  mproc_completed r;
  int rc = mproc_run(ptr(mproc_popen_opts{.argv = argv, .capture_output = true}), 30000, &r);
  int v = rc == 0 && r.returncode == 0 && r.stdout_data ? atoi(r.stdout_data) : -1;
  mproc_completed_free(&r);
  return v >= 300 && v < 400 ? v - 300 : -1;
}

// The interpreter of minor version in [lo, hi], by the order above; "" with *why when there is none.
std::string find_python(const char *env, int lo, int hi, std::string *why) {
  std::vector<std::string> candidates;
  if (const char *e = std::getenv(env)) candidates.push_back(e);
  std::string root = std::getenv("PYENV_ROOT") ? std::getenv("PYENV_ROOT")
                     : std::getenv("HOME")     ? std::string(std::getenv("HOME")) + "/.pyenv"
                                               : "";
  std::vector<std::pair<int, std::string>> pyenv; // (minor, path), newest first
  if (DIR *d = root.empty() ? nullptr : opendir((root + "/versions").c_str())) {
    while (dirent *e = readdir(d)) {
      int major = 0, minor = 0;
      if (sscanf(e->d_name, "%d.%d", &major, &minor) == 2 && major == 3 && minor >= lo && minor <= hi)
        pyenv.push_back({minor, root + "/versions/" + e->d_name + "/bin/python3"});
    }
    closedir(d);
  }
  std::sort(pyenv.rbegin(), pyenv.rend());
  for (auto &p : pyenv) candidates.push_back(p.second);
  candidates.push_back("/usr/bin/python3");
  candidates.push_back("python3");
  for (auto &c : candidates) {
    int m = minor_of(c);
    if (m >= lo && m <= hi) {
      fprintf(stderr, "interop: CPython 3.%d at %s\n", m, c.c_str()); // which one the results are against
      return c;
    }
  }
  *why = std::string("no Python 3.") + std::to_string(lo) + (hi > lo ? "+" : "") + " found (set " + env +
         ", or install one with pyenv)";
  return "";
}

const std::string &python312(std::string *why) {
  static std::string why_s, path = find_python("MPROC_PYTHON", 12, 99, &why_s);
  *why = why_s;
  return path;
}

const std::string &python311(std::string *why) {
  static std::string why_s, path = find_python("MPROC_PYTHON_LEGACY", 8, 11, &why_s);
  *why = why_s;
  return path;
}

// ---- the Python side --------------------------------------------------------------------------------

// argv: role family address key-hex [digest]. Roles: client, server (prints its address first), digest
// (a server that challenges with the digest named), raw-client (no key: reads the first message, says
// what it starts with, answers "hello"). The peer's messages are echoed reversed until "bye". Exit 3:
// AuthenticationError; 4: end of file; 5: another OSError.
const char *kScript = R"PY(
import sys, binascii
from multiprocessing import connection as mc
role, fam, addr, key = sys.argv[1:5]
key = None if key == '-' else binascii.unhexlify(key)
def py_addr(a):
    if fam == 'AF_INET':
        h, p = a.rsplit(':', 1)
        return (h, int(p))
    return '\0' + a[1:] if a.startswith('@') else a
def mproc_addr(a):
    if fam == 'AF_INET':
        return '%s:%d' % a
    if isinstance(a, bytes):
        a = a.decode()
    return '@' + a[1:] if a.startswith('\0') else a
def echo(c):
    c.send_bytes(b'hello from python')
    while True:
        m = c.recv_bytes()
        if m == b'bye':
            break
        c.send_bytes(m[::-1])
try:
    if role == 'client':
        echo(mc.Client(py_addr(addr), family=fam, authkey=key))
    elif role == 'raw-client':
        c = mc.Client(py_addr(addr), family=fam)
        print(c.recv_bytes()[:19].decode('latin-1'), flush=True)
        c.send_bytes(b'hello')
        print(c.recv_bytes().decode('latin-1'), flush=True)
    else:
        l = mc.Listener(None if addr == '-' else py_addr(addr), family=fam,
                        authkey=None if role == 'digest' else key)
        print(mproc_addr(l.address), flush=True)
        c = l.accept()
        if role == 'digest':
            mc.deliver_challenge(c, key, digest_name=sys.argv[5])
            mc.answer_challenge(c, key)
            c.send_bytes(b'ok ' + sys.argv[5].encode())
            c.recv_bytes()
        else:
            echo(c)
except mc.AuthenticationError as e:
    print('AuthenticationError:', e, flush=True)
    sys.exit(3)
except EOFError:
    print('EOFError', flush=True)
    sys.exit(4)
except OSError as e:
    print('OSError:', e, flush=True)
    sys.exit(5)
)PY";

const char kKey[] = "interop key";
const char kOtherKey[] = "other key";

std::string hex(const char *s, size_t n) {
  static const char d[] = "0123456789abcdef";
  std::string h;
  for (size_t i = 0; i < n; ++i) {
    h += d[(unsigned char)s[i] >> 4];
    h += d[(unsigned char)s[i] & 15];
  }
  return h;
}

// A running Python script.
struct Py {
  mproc_popen *p = nullptr;
  Py(const std::string &python, std::vector<std::string> args) {
    std::vector<const char *> argv{python.c_str(), "-c", kScript};
    for (auto &a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    EXPECT_EQ(mproc_popen_create(&p, ptr(mproc_popen_opts{.argv = argv.data(), .stdout_mode = MPROC_PIPE})), 0)
        << mproc_last_error();
  }
  std::string line() { // its next line of output
    char buf[4096];
    size_t n = 0;
    mproc_line_end end;
    if (!p || mproc_popen_readline(p, 1, buf, sizeof buf, 30000, &n, &end) != 0) return "<no line>";
    return std::string(buf, n);
  }
  int wait() {
    int code = -1000;
    if (p) {
      EXPECT_EQ(mproc_popen_wait(p, 30000, &code), 0) << mproc_last_error();
    }
    return code;
  }
  ~Py() {
    if (p && mproc_popen_wait(p, 0, nullptr) == MPROC_ETIMEDOUT) mproc_popen_kill(p);
    mproc_popen_destroy(p);
  }
};

std::string recv_str(mproc_connection *c) {
  char *m = nullptr;
  size_t n = 0;
  int rc = mproc_connection_recv_bytes(c, 0, 30000, &m, &n);
  if (rc) return "<" + std::string(mproc_last_error()) + ">";
  std::string s(m, n);
  mproc_free(m);
  return s;
}

// mproc_client to addr with the key (16 or so bytes), MD5 allowed or not.
int connect_with(const std::string &addr, const char *key, size_t klen, bool allow_md5, mproc_connection **c) {
  return mproc_client(
      c,
      ptr(mproc_client_opts{
          .address = addr.c_str(), .authkey = key, .authkey_size = klen, .allow_legacy_md5 = allow_md5}),
      30000);
}

// The echo conversation with the script: its hello, then messages of sizes around CPython's cut-offs
// (16384: header and payload written apart; 2 GiB is too much for a test), each back reversed.
void converse(mproc_connection *c) {
  EXPECT_EQ(recv_str(c), "hello from python");
  for (size_t n : {0u, 1u, 16384u, 16385u, 70000u, (1u << 20) + 3}) {
    std::string m(n, '\0');
    for (size_t i = 0; i < n; ++i) m[i] = (char)(i * 13 + i / 7);
    std::thread w([&] { EXPECT_EQ(mproc_connection_send_bytes(c, m.data(), m.size(), 0, MPROC_ALL), 0); });
    EXPECT_EQ(recv_str(c), std::string(m.rbegin(), m.rend())) << n;
    w.join();
  }
  EXPECT_EQ(mproc_connection_send_bytes(c, "bye", 3, 0, MPROC_ALL), 0);
}

struct Family {
  const char *name;
  const char *py_family;
  const char *address; // for an mproc listener
};

void PrintTo(const Family &f, std::ostream *os) { *os << f.name; }

class Interop : public ::testing::TestWithParam<Family> {
 protected:
  void SetUp() override {
    std::string why;
    if (mproc_test::kNoCrypto) GTEST_SKIP() << "built without libcrypto: no authkeys";
    py_ = python312(&why);
    if (py_.empty()) GTEST_SKIP() << why;
  }
  mproc_listener *listen(const char *key, size_t klen) {
    mproc_listener *l = nullptr;
    EXPECT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = GetParam().address,
                                                                .family = MPROC_FAMILY_DEFAULT,
                                                                .authkey = key,
                                                                .authkey_size = klen})),
              0)
        << mproc_last_error();
    if (!GetParam().address) {
      EXPECT_EQ(mproc_listener_family(l), MPROC_FAMILY_UNIX);
    }
    return l;
  }
  // Where a Python listener of this family is to listen ("-": its own choice). An abstract name of its
  // own: an empty one would be one for the whole machine.
  std::string py_listen_at() {
    static int n = 0;
    if (!GetParam().address) return "-";
    if (std::string(GetParam().address) != "@") return GetParam().address;
    return "@mproc-interop-" + std::to_string((long long)getpid()) + "-" + std::to_string(++n);
  }
  std::string py_;
};

} // namespace

INSTANTIATE_TEST_SUITE_P(Families, Interop,
                         ::testing::Values(Family{"unix_path", "AF_UNIX", nullptr},
                                           Family{"unix_abstract", "AF_UNIX", "@"},
                                           Family{"tcp", "AF_INET", "127.0.0.1:0"}),
                         [](const ::testing::TestParamInfo<Family> &i) { return std::string(i.param.name); });

TEST_P(Interop, PythonClientToMprocListener) {
  mproc_listener *l = listen(kKey, sizeof kKey - 1);
  ASSERT_NE(l, nullptr);
  Py py(py_, {"client", GetParam().py_family, mproc_listener_address(l), hex(kKey, sizeof kKey - 1)});
  mproc_connection *c = nullptr;
  ASSERT_EQ(mproc_listener_accept(l, 30000, &c), 0) << mproc_last_error();
  converse(c);
  EXPECT_EQ(py.wait(), 0);
  mproc_connection_destroy(c);
  mproc_listener_destroy(l);
}

TEST_P(Interop, MprocClientToPythonListener) {
  Py py(py_, {"server", GetParam().py_family, py_listen_at(), hex(kKey, sizeof kKey - 1)});
  std::string addr = py.line();
  if (std::string(GetParam().name) == "unix_abstract") {
    ASSERT_EQ(addr[0], '@') << addr;
  }
  mproc_connection *c = nullptr;
  ASSERT_EQ(connect_with(addr, kKey, sizeof kKey - 1, false, &c), 0) << mproc_last_error();
  converse(c);
  EXPECT_EQ(py.wait(), 0);
  mproc_connection_destroy(c);
}

TEST_P(Interop, AWrongKeyIsRefusedByBothWhicheverListens) {
  { // Python's client holds the wrong key
    mproc_listener *l = listen(kKey, sizeof kKey - 1);
    ASSERT_NE(l, nullptr);
    Py py(py_, {"client", GetParam().py_family, mproc_listener_address(l), hex(kOtherKey, sizeof kOtherKey - 1)});
    mproc_connection *c = nullptr;
    EXPECT_EQ(mproc_listener_accept(l, 30000, &c), MPROC_EAUTH) << mproc_last_error();
    EXPECT_EQ(py.line().rfind("AuthenticationError", 0), 0u);
    EXPECT_EQ(py.wait(), 3);
    mproc_listener_destroy(l);
  }
  { // ours does
    Py py(py_, {"server", GetParam().py_family, py_listen_at(), hex(kKey, sizeof kKey - 1)});
    std::string addr = py.line();
    mproc_connection *c = nullptr;
    EXPECT_EQ(connect_with(addr, kOtherKey, sizeof kOtherKey - 1, false, &c), MPROC_EAUTH) << mproc_last_error();
    EXPECT_EQ(py.line().rfind("AuthenticationError", 0), 0u);
    EXPECT_EQ(py.wait(), 3);
  }
}

TEST_P(Interop, AMissingKeyOnEitherSideServesNothing) {
  { // a Python client without a key: it is challenged, and its "hello" is refused
    mproc_listener *l = listen(kKey, sizeof kKey - 1);
    ASSERT_NE(l, nullptr);
    Py py(py_, {"raw-client", GetParam().py_family, mproc_listener_address(l), "-"});
    mproc_connection *c = nullptr;
    EXPECT_EQ(mproc_listener_accept(l, 30000, &c), MPROC_EAUTH) << mproc_last_error();
    EXPECT_EQ(py.line(), "#CHALLENGE#{sha256}");
    EXPECT_EQ(py.line(), "#FAILURE#");
    EXPECT_EQ(py.wait(), 0);
    mproc_listener_destroy(l);
  }
  { // a Python listener without a key: its hello is no challenge
    Py py(py_, {"server", GetParam().py_family, py_listen_at(), "-"});
    std::string addr = py.line();
    mproc_connection *c = nullptr;
    EXPECT_EQ(connect_with(addr, kKey, sizeof kKey - 1, false, &c), MPROC_EAUTH) << mproc_last_error();
    EXPECT_NE(py.wait(), 0); // its peer left: end of file
  }
  { // a Python listener with a key, an mproc client without: what comes first is its challenge
    Py py(py_, {"server", GetParam().py_family, py_listen_at(), hex(kKey, sizeof kKey - 1)});
    std::string addr = py.line();
    mproc_connection *c = nullptr;
    ASSERT_EQ(mproc_client(&c, ptr(mproc_client_opts{.address = addr.c_str()}), 30000), 0) << mproc_last_error();
    EXPECT_EQ(recv_str(c).rfind("#CHALLENGE#{sha256}", 0), 0u);
    mproc_connection_destroy(c);
    EXPECT_NE(py.wait(), 0);
  }
}

// Every digest CPython 3.12's deliver_challenge may choose; MD5 only when asked for.
TEST(InteropDigests, AnMprocClientAnswersEveryDigestAPythonListenerMayChoose) {
  if (mproc_test::kNoCrypto) GTEST_SKIP() << "built without libcrypto: no authkeys";
  std::string why, py = python312(&why);
  if (py.empty()) GTEST_SKIP() << why;
  const struct {
    const char *d;
    bool allow;
  } cases[] = {{"sha256", false},   {"sha384", false}, {"sha3_256", false},
               {"sha3_384", false}, {"md5", false},    {"md5", true}};
  for (auto [d, allow] : cases) {
    bool md5 = std::string(d) == "md5";
    SCOPED_TRACE(std::string(d) + (allow ? " allowed" : ""));
    Py server(py, {"digest", "AF_INET", "127.0.0.1:0", hex(kKey, sizeof kKey - 1), d});
    std::string addr = server.line();
    mproc_connection *c = nullptr;
    int rc = connect_with(addr, kKey, sizeof kKey - 1, allow, &c);
    if (md5 && !allow) {
      EXPECT_EQ(rc, MPROC_EAUTH) << mproc_last_error();
      EXPECT_NE(server.wait(), 0);
      continue;
    }
    ASSERT_EQ(rc, 0) << mproc_last_error();
    EXPECT_EQ(recv_str(c), std::string("ok ") + d);
    EXPECT_EQ(mproc_connection_send_bytes(c, "x", 1, 0, MPROC_ALL), 0);
    EXPECT_EQ(server.wait(), 0);
    mproc_connection_destroy(c);
  }
}

// The outcome of a handshake with a Python 3.11 peer: with MD5 allowed, served (the echo conversation);
// else refused, saying why, and the peer ends with refused_code (-1: any failure).
void legacy_outcome(int rc, bool allow, mproc_connection *c, Py &peer, int refused_code) {
  if (allow) {
    ASSERT_EQ(rc, 0) << mproc_last_error();
    converse(c);
    EXPECT_EQ(peer.wait(), 0);
    return;
  }
  EXPECT_EQ(rc, MPROC_EAUTH);
  EXPECT_NE(std::string(mproc_last_error()).find("Python 3.11"), std::string::npos) << mproc_last_error();
  int code = peer.wait();
  if (refused_code >= 0) {
    EXPECT_EQ(code, refused_code);
  } else {
    EXPECT_NE(code, 0);
  }
}

// Python 3.11 and older: a 20-byte challenge and a bare HMAC-MD5 answer. Refused, unless asked for.
TEST(InteropLegacy, Python311IsRefusedUnlessMD5IsAllowed) {
  if (mproc_test::kNoCrypto) GTEST_SKIP() << "built without libcrypto: no authkeys";
  std::string why, py = python311(&why);
  if (py.empty()) GTEST_SKIP() << why;
  for (bool allow : {false, true}) {
    SCOPED_TRACE(allow);
    { // a 3.11 client against an mproc listener
      mproc_listener *l = nullptr;
      ASSERT_EQ(mproc_listener_create(&l, ptr(mproc_listener_opts{.address = "127.0.0.1:0",
                                                                  .authkey = kKey,
                                                                  .authkey_size = sizeof kKey - 1,
                                                                  .allow_legacy_md5 = allow})),
                0)
          << mproc_last_error();
      Py client(py, {"client", "AF_INET", mproc_listener_address(l), hex(kKey, sizeof kKey - 1)});
      mproc_connection *c = nullptr;
      int rc = mproc_listener_accept(l, 30000, &c);
      legacy_outcome(rc, allow, c, client, 3); // "digest sent was rejected"
      mproc_connection_destroy(c);
      mproc_listener_destroy(l);
    }
    { // an mproc client against a 3.11 listener
      Py server(py, {"server", "AF_INET", "127.0.0.1:0", hex(kKey, sizeof kKey - 1)});
      std::string addr = server.line();
      mproc_connection *c = nullptr;
      int rc = connect_with(addr, kKey, sizeof kKey - 1, allow, &c);
      legacy_outcome(rc, allow, c, server, -1); // refused: we left without answering
      mproc_connection_destroy(c);
    }
  }
}
