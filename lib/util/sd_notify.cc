#include "util/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "util/file.h"

namespace bootfleet::util {

std::optional<std::chrono::microseconds> parse_watchdog_usec(const std::string& text) {
  if (text.empty() || text.size() > 19) return std::nullopt;  // 19 digits fit in int64
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value == 0 || value > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return std::chrono::microseconds(static_cast<int64_t>(value));
}

SdNotifier SdNotifier::from_environment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  std::chrono::microseconds watchdog{0};
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  // WATCHDOG_PID names the process systemd expects pings from; a child that
  // inherited the environment must not ping on its parent's behalf.
  bool ours = !pid || std::to_string(::getpid()) == pid;
  if (usec && ours) {
    if (auto parsed = parse_watchdog_usec(usec)) watchdog = *parsed;
  }
  return SdNotifier(socket ? socket : "", watchdog);
}

SdNotifier::SdNotifier(std::string socket, std::chrono::microseconds watchdog)
    : socket_(std::move(socket)), watchdog_(watchdog) {}

std::optional<std::string> SdNotifier::notify(const std::string& state) const {
  if (socket_.empty()) return std::nullopt;
  const std::string what = "NOTIFY_SOCKET '" + socket_ + "'";
  if (socket_[0] != '/' && socket_[0] != '@') {
    return what + ": not an absolute path or @abstract name (systemd sets one of the two)";
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof(addr.sun_path)) {
    return what + ": longer than the " + std::to_string(sizeof(addr.sun_path) - 1) +
           " bytes a unix socket name may have";
  }
  std::memcpy(addr.sun_path, socket_.data(), socket_.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
  if (socket_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  } else {
    length += 1;
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return what + ": socket: " + std::strerror(errno);
  ssize_t sent;
  do {
    sent = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return what + ": " + std::strerror(errno);
  if (static_cast<size_t>(sent) != state.size()) return what + ": short send";
  return std::nullopt;
}

}  // namespace bootfleet::util
