// SIGINT and SIGTERM while imgtool runs a guest.
//
// Design note. A guest call blocks for seconds to minutes (a libguestfs
// launch or command, a network boot). Dying of the signal there leaves
// QEMU, the build's socket and work directory and libguestfs's temporary
// directory behind. So while a StopSignals lives the two signals only
// record themselves; the caller polls received() where it loops (boot-test)
// and, with kill_children, a watcher thread woken through a pipe (the one
// thing the handler does besides the flag) stops this process's child
// processes (the appliance's QEMU and libguestfs's recovery process:
// SIGTERM, then SIGKILL for what still runs 3 s later), so a
// blocked libguestfs call fails at once and the caller unwinds as on any
// error, every destructor cleaning up. Guest::launch does not fall back to
// TCG after a launch that failed because of the signal. One StopSignals at
// a time; the handlers in place before it are restored after it.
#pragma once

#include <signal.h>

#include <optional>
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
  void stop_children();

  bool kill_children_;
  int pipe_[2] = {-1, -1};
  std::thread watcher_;
  struct sigaction old_int_ {}, old_term_ {};
};

// A private TMPDIR while it lives: a fresh directory under the current one
// ($TMPDIR, else /var/tmp), removed with everything in it at the end, and
// the old value restored. libguestfs's temporary directory and the files of
// the QEMU it runs (its vl.XXXXXX snapshot overlay, which a QEMU killed
// before it handles SIGTERM leaves behind) go there, so nothing of a build
// outlives it however it ends. LIBGUESTFS_CACHEDIR is pinned to where
// libguestfs kept its appliance before (it follows TMPDIR otherwise), so
// the appliance is not rebuilt. setenv is not thread-safe: make it before
// any thread of the process starts.
class PrivateTmpdir {
 public:
  PrivateTmpdir();
  ~PrivateTmpdir();
  PrivateTmpdir(const PrivateTmpdir&) = delete;
  PrivateTmpdir& operator=(const PrivateTmpdir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::optional<std::string> old_tmpdir_, old_cachedir_;
};

// Sends `sig` to every process whose parent is this one; returns how many.
int kill_child_processes(int sig);
// Sends `sig` to every child process whose program's path contains
// `program` (e.g. "qemu"); returns how many.
int kill_child_processes_running(const std::string& program, int sig);
// How many processes have this one as their parent and still run.
int count_child_processes();

}  // namespace bootfleet::guest
