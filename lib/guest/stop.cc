#include "guest/stop.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
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
pid_t parent_of(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

int kill_child_processes() {
  int killed = 0;
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  const pid_t self = ::getpid();
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (parent_of(name) != self) continue;
    if (::kill(static_cast<pid_t>(std::stol(name)), SIGKILL) == 0) ++killed;
  }
  ::closedir(d);
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
    if (signalled && kill_children_) kill_child_processes();
    if (quit) return;
  }
}

int StopSignals::received() { return stop_signal; }

std::string StopSignals::name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

}  // namespace bootfleet::guest
