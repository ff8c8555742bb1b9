#include "guest/netboot_vm.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace bootfleet::guest {

using util::Error;

Firmware parse_firmware(const std::string& text, const std::string& what) {
  if (text == "bios") return Firmware::kBios;
  if (text == "uefi") return Firmware::kUefi;
  throw Error(what + ": '" + text + "' is not a firmware; use 'bios' (SeaBIOS) or 'uefi' (OVMF)");
}

std::vector<std::string> netboot_qemu_args(const NetbootVmOptions& o) {
  std::vector<std::string> a{o.qemu,
                             "-accel", o.accel == Accel::kKvm ? "kvm" : "tcg",
                             "-nographic", "-no-reboot",  // a panic (panic=-1) or a reboot ends the test
                             "-m", std::to_string(o.memory_mib)};
  if (o.firmware == Firmware::kUefi) {
    // OVMF ignores -boot; the NIC's bootindex puts it first.
    a.insert(a.end(), {"-drive", "if=pflash,format=raw,readonly=on,file=" + o.ovmf_code,
                       "-drive", "if=pflash,format=raw,file=" + o.ovmf_vars});
  } else {
    a.insert(a.end(), {"-boot", "n"});
  }
  a.insert(a.end(), {"-netdev", "user,id=n0,bootfile=" + o.bootfile_url,
                     "-device", "virtio-net-pci,netdev=n0,mac=" + o.mac + ",bootindex=1",
                     "-serial", "file:" + o.console_path,
                     "-monitor", "none", "-display", "none"});
  return a;
}

namespace {

// The program's path, found before fork: execvp may allocate, which a child
// of a threaded process must not.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = (end > start ? dirs.substr(start, end - start) : ".") + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  throw Error(name + " not found in PATH (Debian: apt-get install qemu-system-x86)");
}

}  // namespace

NetbootVm::NetbootVm(const NetbootVmOptions& options) : options_(options) {
  std::string program = find_program(options_.qemu);
  std::vector<std::string> args = netboot_qemu_args(options_);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int console = ::open(options_.console_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (console < 0) throw util::errno_error("create the console file " + options_.console_path);
  console_fd_ = console;
  int out = ::open(options_.output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) throw util::errno_error("create " + options_.output_path);
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // imgtool died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execv(program.c_str(), argv.data());
    const char msg[] = "exec of qemu failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  int err = errno;
  ::close(out);
  if (null >= 0) ::close(null);
  if (pid < 0) throw util::errno_error("start " + program, err);
  pid_ = pid;
}

NetbootVm::~NetbootVm() {
  kill();
  if (console_fd_ >= 0) ::close(console_fd_);
}

std::string NetbootVm::Exit::describe() const {
  if (!signaled) return "exited with status " + std::to_string(code);
  const char* name = ::strsignal(code);
  return "died of signal " + std::to_string(code) + (name ? std::string(" (") + name + ")" : "");
}

std::optional<NetbootVm::Exit> NetbootVm::poll() {
  if (exit_ || pid_ < 0) return exit_;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  Exit e;
  if (r == pid_ && WIFSIGNALED(status)) {
    e.signaled = true;
    e.code = WTERMSIG(status);
  } else if (r == pid_) {
    e.code = WEXITSTATUS(status);
  }
  exit_ = e;
  return exit_;
}

void NetbootVm::kill() {
  if (pid_ < 0 || exit_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_ = Exit{true, SIGKILL};
}

std::string NetbootVm::read_console() {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(console_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string NetbootVm::output_tail(size_t max) const {
  int fd = ::open(options_.output_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) == 0) {
    off_t from = st.st_size > static_cast<off_t>(max) ? st.st_size - static_cast<off_t>(max) : 0;
    out.resize(static_cast<size_t>(st.st_size - from));
    ssize_t n = ::pread(fd, out.data(), out.size(), from);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  ::close(fd);
  return out;
}

std::regex parse_expect(const std::string& pattern) {
  if (pattern.empty()) throw Error("--expect: the pattern is empty; give a regex such as 'bootfleet-marker'");
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw Error("--expect '" + pattern + "': not an ECMAScript regex: " + e.what());
  }
}

bool ConsoleWatch::feed(std::string_view bytes) {
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (escape_ == 1) {
      escape_ = c == '[' ? 2 : 0;
      continue;
    }
    if (escape_ == 2) {
      if (c >= 0x40 && c <= 0x7e) escape_ = 0;
      continue;
    }
    if (c == 0x1b) {
      escape_ = 1;
    } else if (c == '\n') {
      line_done();
    } else if (c == '\t') {
      line_ += ' ';
    } else if (c >= 0x20 && c != 0x7f) {
      line_ += ch;
      if (line_.size() >= 4096) line_done();  // a console that never ends a line
    }
  }
  return matched();
}

bool ConsoleWatch::finish() {
  if (!line_.empty()) line_done();
  return matched();
}

void ConsoleWatch::restart() {
  line_.clear();
  escape_ = 0;
  tail_.clear();
  panic_.clear();
  kernel_started_ = false;
}

void ConsoleWatch::line_done() {
  if (!matched_ && std::regex_search(line_, expect_)) matched_ = line_;
  if (!kernel_started_) {
    static const std::regex kernel_line(R"(Linux version |^\[ *[0-9]+\.[0-9]{6}\] )");
    kernel_started_ = std::regex_search(line_, kernel_line);
  }
  if (panic_.empty()) {
    auto at = line_.find("Kernel panic - not syncing");
    if (at != std::string::npos) panic_ = line_.substr(at);
  }
  tail_.push_back(std::move(line_));
  if (tail_.size() > tail_lines_) tail_.pop_front();
  line_.clear();
}

std::vector<std::string> ConsoleWatch::tail() const {
  std::vector<std::string> out(tail_.begin(), tail_.end());
  if (!line_.empty()) out.push_back(line_);
  if (out.size() > tail_lines_) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(tail_lines_));
  return out;
}

}  // namespace bootfleet::guest
