// SIGINT and SIGTERM while imgtool runs a guest.
//
// Design note. A guest call blocks for seconds to minutes (a libguestfs
// launch or command, a network boot). Dying of the signal there leaves
// QEMU, the build's socket and work directory and libguestfs's temporary
// directory behind. So while a StopSignals lives the two signals only
// record themselves; the caller polls received() where it loops (boot-test)
// and, with kill_children, a watcher thread woken through a pipe (the one
// thing the handler does besides the flag) kills this process's child
// processes (the appliance's QEMU and libguestfs's recovery process), so a
// blocked libguestfs call fails at once and the caller unwinds as on any
// error, every destructor cleaning up. Guest::launch does not fall back to
// TCG after a launch that failed because of the signal. One StopSignals at
// a time; the handlers in place before it are restored after it.
#pragma once

#include <signal.h>

#include <string>
#include <thread>

namespace bootfleet::guest {

class StopSignals {
 public:
  explicit StopSignals(bool kill_children = false);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // 0 until SIGINT or SIGTERM arrived while a StopSignals lived, then that signal.
  static int received();
  // "SIGINT" or "SIGTERM".
  static std::string name(int sig);

 private:
  void watch();

  bool kill_children_;
  int pipe_[2] = {-1, -1};
  std::thread watcher_;
  struct sigaction old_int_ {}, old_term_ {};
};

// Sends SIGKILL to every process whose parent is this one; returns how many.
int kill_child_processes();

}  // namespace bootfleet::guest
