// systemd's readiness protocol (sd_notify(3)) for Type=notify services,
// without libsystemd: one datagram of "KEY=VALUE\n" lines to the
// AF_UNIX socket named by $NOTIFY_SOCKET.
//
// Use (bootsrv serve):
//   util::SdNotifier notifier = util::SdNotifier::from_environment();
//   ...bind every listener...
//   notifier.notify("READY=1\nSTATUS=serving");
//   while (...) { wait at most notifier.watchdog_interval() / 2; notifier.notify("WATCHDOG=1"); }
//   notifier.notify("STOPPING=1");
//
// Design note. The protocol is twenty lines of socket code, so we write it
// rather than link libsystemd into a binary that also runs outside systemd
// (containers, by hand, in tests): one less shared library in the package's
// Depends and nothing to stub where systemd is absent. Without
// $NOTIFY_SOCKET every call is a no-op, as with sd_notify(). A socket that
// is set but unusable (a relative path, a name too long, nobody listening)
// is an error value, not an exit: the caller logs it once and keeps
// serving, since systemd will in any case notice a missing READY=1 by its
// start timeout. The environment is read once, at construction, so tests can
// build a notifier for a socket of their own without touching the process
// environment.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace bootfleet::util {

class SdNotifier {
 public:
  // $NOTIFY_SOCKET, and the watchdog from $WATCHDOG_USEC when $WATCHDOG_PID
  // is unset or names this process (sd_watchdog_enabled(3)).
  static SdNotifier from_environment();
  // An explicit socket ("/run/x.sock", or "@name" for the abstract
  // namespace; empty: disabled) and watchdog interval (0: none).
  SdNotifier(std::string socket, std::chrono::microseconds watchdog);
  SdNotifier() = default;

  bool enabled() const { return !socket_.empty(); }
  const std::string& socket() const { return socket_; }
  // How often systemd wants WATCHDOG=1 at the latest; zero when it does not.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }

  // Sends `state` ("READY=1", "WATCHDOG=1", "STATUS=...", several joined by
  // '\n') as one datagram. Returns an empty optional on success or when
  // disabled, else why it failed, naming the socket.
  std::optional<std::string> notify(const std::string& state) const;

 private:
  std::string socket_;
  std::chrono::microseconds watchdog_{0};
};

// Parses $WATCHDOG_USEC's value: a positive decimal count of microseconds.
// Returns nullopt for anything else (empty, zero, signs, junk, overflow).
std::optional<std::chrono::microseconds> parse_watchdog_usec(const std::string& text);

}  // namespace bootfleet::util
