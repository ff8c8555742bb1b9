// One NBD client on a connected stream socket (TCP or unix), from the
// handshake to the disconnect.
//
// Design note. The handshake is fixed newstyle only: OPT_EXPORT_NAME,
// OPT_INFO, OPT_GO, OPT_LIST, OPT_ABORT, OPT_STRUCTURED_REPLY and the meta
// context options (base:allocation); anything else gets NBD_REP_ERR_UNSUP.
// Each connection has its own thread, so a slow client never holds up
// another. That thread reads requests and answers at once whatever needs no
// wait for a disk (reads the page cache holds, writes into the write cache,
// errors), gathering replies into one send (large cached reads go out
// straight from the version files, util/file_send.h); what may wait (uncached reads,
// FLUSH, FUA) goes to a few worker threads of the connection, bounded
// in count and in buffered bytes, whose replies go out as they complete,
// matched by cookie. Every length the peer sends is checked before anything
// is allocated; a peer that breaks framing (bad magic, a payload past our
// limits) is disconnected, which only ever costs that peer. Replies go out
// with MSG_NOSIGNAL, so a client that vanishes mid-reply cannot kill the
// server with SIGPIPE.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "block/device.h"
#include "block/export.h"

namespace bootfleet::nbd {

// The resolver and what it opens are block/'s: iSCSI opens the same exports.
using block::ExportResolver;
using block::OpenedExport;

struct ConnectionOptions {
  const std::atomic<bool>* stopping = nullptr;  // set: finish the request at hand, then close
  bool log_requests = false;
  // How long a reader whose client keeps it busy polls the socket before it
  // sleeps (see receive() in connection.cc); 0: never.
  std::chrono::microseconds busy_poll{50};
  // Called when the client has sent its choice of export (NBD_OPT_GO or
  // NBD_OPT_EXPORT_NAME): the server lifts the handshake deadline
  // (util::PeerLimits::Slot::established), which bounds the peer's
  // slowness, not the time the export takes to open.
  std::function<void()> on_established;
};

// Serves the client until it disconnects or breaks the protocol. Never
// throws; logs one line per connection event and per error, naming `peer`
// and the export.
void serve_connection(int fd, ExportResolver& resolver, const std::string& peer,
                      const ConnectionOptions& options = {});

}  // namespace bootfleet::nbd
