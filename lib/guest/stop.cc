#include "guest/stop.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace bootfleet::guest {

namespace {

volatile sig_atomic_t stop_signal = 0;
std::atomic<int> wake_fd{-1};

void on_stop_signal(int sig) {
  stop_signal = sig;
  int fd = wake_fd.load();
  if (fd >= 0) {
    char c = 's';
    [[maybe_unused]] ssize_t n = ::write(fd, &c, 1);  // async-signal-safe; a full pipe is awake already
  }
}

// The parent pid in /proc/PID/stat: the field after the ")" that ends the
// command name (which may itself hold spaces and parentheses).
pid_t parent_of(const std::string& pid, char* state_out = nullptr) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  if (state_out) *state_out = state.empty() ? '?' : state[0];
  return ppid;
}

// Calls fn(pid) for every child process that has not exited yet (zombies
// are left to whoever waits for them).
template <typename Fn>
void for_each_child(Fn fn) {
  DIR* d = ::opendir("/proc");
  if (!d) return;
  const pid_t self = ::getpid();
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    char state = '?';
    if (parent_of(name, &state) == self && state != 'Z') fn(static_cast<pid_t>(std::stol(name)));
  }
  ::closedir(d);
}

// Whether `pid` runs this program: a fork of this process (libguestfs's
// recovery process), which has our handler and so ignores SIGTERM.
bool runs_this_program(pid_t pid) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  auto other = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  return !ec && self == other;
}

}  // namespace

int count_child_processes() {  // running ones
  int n = 0;
  for_each_child([&](pid_t) { ++n; });
  return n;
}

int kill_child_processes(int sig) {
  int killed = 0;
  for_each_child([&](pid_t pid) {
    if (::kill(pid, sig) == 0) ++killed;
  });
  return killed;
}

int kill_child_processes_running(const std::string& program, int sig) {
  int killed = 0;
  for_each_child([&](pid_t pid) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
    if (!ec && exe.find(program) != std::string::npos && ::kill(pid, sig) == 0) ++killed;
  });
  return killed;
}

StopSignals::StopSignals(bool kill_children) : kill_children_(kill_children) {
  stop_signal = 0;
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) throw util::errno_error("pipe for SIGINT and SIGTERM");
  wake_fd = pipe_[1];
  watcher_ = std::thread([this] { watch(); });
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
  wake_fd = -1;
  char c = 'q';
  [[maybe_unused]] ssize_t n = ::write(pipe_[1], &c, 1);
  watcher_.join();
  ::close(pipe_[0]);
  ::close(pipe_[1]);
}

void StopSignals::watch() {
  while (true) {
    pollfd p{pipe_[0], POLLIN, 0};
    if (::poll(&p, 1, -1) < 0) continue;
    char buf[16];
    ssize_t n = ::read(pipe_[0], buf, sizeof buf);
    bool quit = false, signalled = false;
    for (ssize_t i = 0; i < n; ++i) (buf[i] == 'q' ? quit : signalled) = true;
    if (signalled && kill_children_) stop_children();
    if (quit) return;
  }
}

// SIGTERM first: QEMU then exits cleanly, removing its temporary files
// (SIGKILL left a vl.XXXXXX behind in TMPDIR); whatever still runs after
// 3 s gets SIGKILL. libguestfs's recovery process, a fork of this one, has
// our handler and gets SIGKILL at once.
void StopSignals::stop_children() {
  int signalled = 0;
  for_each_child([&](pid_t pid) {
    if (::kill(pid, runs_this_program(pid) ? SIGKILL : SIGTERM) == 0) ++signalled;
  });
  if (signalled == 0) return;
  for (int i = 0; i < 30; ++i) {
    ::usleep(100 * 1000);
    if (count_child_processes() == 0) return;
  }
  kill_child_processes(SIGKILL);
}

int StopSignals::received() { return stop_signal; }

namespace {
std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::optional<std::string>(v) : std::nullopt;
}
void restore(const char* name, const std::optional<std::string>& value) {
  if (value) {
    ::setenv(name, value->c_str(), 1);
  } else {
    ::unsetenv(name);
  }
}
}  // namespace

PrivateTmpdir::PrivateTmpdir() : old_tmpdir_(env("TMPDIR")), old_cachedir_(env("LIBGUESTFS_CACHEDIR")) {
  std::string base = old_tmpdir_.value_or("/var/tmp");
  std::string tmpl = base + "/bootfleet-tmp-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw util::errno_error("create a temporary directory in " + base);
  path_ = tmpl;
  ::setenv("LIBGUESTFS_CACHEDIR", old_cachedir_.value_or(base).c_str(), 1);
  ::setenv("TMPDIR", path_.c_str(), 1);
}

PrivateTmpdir::~PrivateTmpdir() {
  restore("TMPDIR", old_tmpdir_);
  restore("LIBGUESTFS_CACHEDIR", old_cachedir_);
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string StopSignals::name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

}  // namespace bootfleet::guest
