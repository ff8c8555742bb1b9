// One iSCSI initiator on a connected TCP socket, from the first Login
// Request to the Logout or the disconnect (RFC 7143; ErrorRecoveryLevel 0,
// one connection per session).
//
// Design note. One thread per connection reads PDUs, as for NBD
// (nbd/connection.h): it runs each command on the LUN as soon as its data
// is there, and gathers responses into one send that goes out when no
// further PDU is already buffered. Reads try the page cache first
// (Device::try_read) and go out as Data-In PDUs straight from one reused
// buffer, the status folded into the last of them. READs of 128 KiB or
// more, and smaller ones whose data is not in the page cache, go to up to
// `read_workers` threads of the connection (util/connection_workers.h),
// which send them from the page cache without a copy where they can. Whoever sends holds the connection's send lock
// for all of a command's Data-In and its status, and takes StatSN under
// it, so StatSN rises in the order responses reach the wire (RFC 7143
// §4.2.2.2) and no command's PDUs interleave with another's. Responses may
// then leave in another order than the commands came (SIMPLE task
// attributes allow it; NBD replies out of order the same way). ABORT TASK,
// the resets and Logout take queued reads back or wait for running ones. Writes take their immediate data with the command;
// the rest is solicited with R2T, one task at a time (InitialR2T=Yes is what
// we negotiate, MaxOutstandingR2T=1), so at most one write's data (8 MiB,
// the Block Limits maximum) is buffered beside the immediate data of the
// commands in the CmdSN window. Every length the peer sends is checked
// against what was negotiated before anything is allocated; a peer that
// breaks framing gets a Reject and is disconnected, which costs only it.
//
// Sessions. An iSCSI session is (InitiatorName, ISID). A login with a pair
// that is still logged in reinstates it (§6.3.5): the old connection is shut
// and waited for, so its last write lands before the new connection's first.
// What the initiator's disk is does not depend on the iSCSI session: the
// target name picks an export (target.h), and a client's named session keeps
// its write cache across reconnects, as for NBD.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <string>

#include "iscsi/params.h"
#include "iscsi/target.h"

namespace bootfleet::iscsi {

// The sessions logged in on one server, for reinstatement.
//
// A connection that ends without a Logout (a network blip, a PC that was
// reset mid-write, a connection shut by a reinstating login) leaves what it
// had open here for the session's DefaultTime2Retain: a login with the same
// InitiatorName and ISID to the same target within that time takes it over.
// That is what keeps an anonymous session's write cache across a blip; a
// named session would be found again by name anyway.
class SessionTable {
 public:
  ~SessionTable();
  // A fresh TSIH (never 0).
  uint16_t new_tsih();
  // Registers `connection` as the one of session `key`. When another
  // connection holds it, `kill` of that one is called and this waits (up to
  // `wait`) for it to unregister. Returns false when it did not go in time.
  bool take(const std::string& key, uint64_t connection, uint16_t tsih, std::function<void()> kill,
            std::chrono::milliseconds wait = std::chrono::seconds(10));
  void release(const std::string& key, uint64_t connection);
  // release(), keeping `opened` (of `target`) for `retain` for the next login of `key`.
  void retain(const std::string& key, uint64_t connection, uint16_t tsih, const std::string& target,
              OpenedTarget opened, std::chrono::seconds retain);
  // What a connection of `key` to `target` left behind, if it is still kept.
  std::optional<OpenedTarget> reclaim(const std::string& key, const std::string& target);
  // The TSIH of a session that is logged in or kept, or 0.
  uint16_t tsih_of(const std::string& key);
  // Lets go of what was kept longer than its time.
  void expire();

 private:
  struct Slot {
    uint64_t connection;
    uint16_t tsih;
    std::function<void()> kill;
  };
  struct Kept {
    uint16_t tsih;
    std::string target;
    OpenedTarget opened;
    std::chrono::steady_clock::time_point until;
  };
  std::mutex mutex_;
  std::condition_variable released_;
  std::map<std::string, Slot> slots_;
  std::map<std::string, Kept> kept_;
  uint16_t next_tsih_ = 1;
};

struct ConnectionOptions {
  const std::atomic<bool>* stopping = nullptr;
  TargetLimits limits;
  uint32_t cmdsn_window = 32;  // commands in flight an initiator may have
  // A login must be done within this (a peer that connects and says
  // nothing, or stops half way, holds a thread until then). iscsi::Server
  // also holds logins to its PeerLimits' handshake deadline.
  std::chrono::seconds login_timeout{30};
  // Called once the login is done (iscsi::Server lifts the handshake deadline).
  std::function<void()> on_established;
  bool log_commands = false;
  // How long a reader whose initiator keeps it busy polls the socket
  // before it sleeps (util/socket_reader.h); 0: never.
  std::chrono::microseconds busy_poll{50};
  // Threads per connection for READs of 128 KiB or more and READs that
  // must wait for a disk (started when needed); 0: every command is
  // answered on the connection's own thread.
  size_t read_workers = 4;
};

// Serves the initiator until it logs out, disconnects or breaks the
// protocol. Never throws; logs one line per login, logout and error, naming
// `peer`, the initiator and the target (never a secret).
void serve_connection(int fd, Targets& targets, SessionTable& sessions, const std::string& peer,
                      const ConnectionOptions& options = {});

}  // namespace bootfleet::iscsi
