#include "nbd/connection.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "nbd/protocol.h"
#include "util/bytes.h"
#include "util/connection_workers.h"
#include "util/error.h"
#include "util/file_send.h"
#include "util/log.h"
#include "util/socket_reader.h"

namespace bootfleet::nbd {

namespace {

using util::load_be16;
using util::load_be32;
using util::load_be64;
using util::store_be16;
using util::store_be32;
using util::store_be64;

// Payloads past this are not read into memory: the peer is dropped.
constexpr uint64_t kMaxDiscard = 64u << 20;
// Replies gathered for one send by the reading thread (reads below
// kToWorkersFrom are answered from it).
constexpr size_t kBatchBytes = 256u << 10;
// Reads larger than this are read and sent a piece at a time, so what a
// reply holds in memory does not grow with the request: a client that asks
// for 32 MiB and never reads the answer pins one piece, not 32 MiB (the
// socket's send buffer holds the rest, and the reader, blocked in send,
// reads no further requests). The reader keeps one piece between requests.
constexpr size_t kReadPiece = 1u << 20;
// Reads from this size on go to the workers, which send them from the
// version files without a copy (util/file_send.h) when they map to them;
// smaller ones are cheaper copied into the batch, where many replies share
// one send.
constexpr uint32_t kToWorkersFrom = 128u << 10;
static_assert(kToWorkersFrom + 28 <= kBatchBytes, "smaller reads must fit the batch");
// Threads per connection for requests that may wait on a disk, and what they
// may hold between them before the reader stops reading. With kReadPiece,
// this bounds a connection's memory: about kMaxBytesHeld + (kWorkers + 1)
// pieces + one batch, whatever the client sends or leaves unread.
constexpr size_t kWorkers = 4;
constexpr size_t kMaxJobsHeld = 32;
constexpr uint64_t kMaxBytesHeld = 8u << 20;

// Reply headers: a simple reply (16 bytes), a structured chunk with DONE (20).
void simple_reply_header(uint8_t* h, uint32_t error, uint64_t cookie) {
  store_be32(h, kSimpleReplyMagic);
  store_be32(h + 4, error);
  store_be64(h + 8, cookie);
}
void chunk_header(uint8_t* h, uint16_t type, uint64_t cookie, uint32_t length) {
  store_be32(h, kStructuredReplyMagic);
  store_be16(h + 4, kReplyFlagDone);
  store_be16(h + 6, type);
  store_be64(h + 8, cookie);
  store_be32(h + 16, length);
}

// A range inside an export of `size` bytes.
bool in_export(const Request& r, uint64_t size) { return r.offset <= size && r.length <= size - r.offset; }
// A READ the protocol lets us answer with data.
bool valid_read(const Request& r, uint64_t size) { return r.length != 0 && r.length <= kMaxPayload && in_export(r, size); }

class Connection {
 public:
  Connection(int fd, ExportResolver& resolver, std::string peer, const ConnectionOptions& options)
      : fd_(fd), resolver_(resolver), peer_(std::move(peer)), options_(options) {}
  // export_ releases itself (block::ReleaseOnce) after the body of the destructor.
  void run();

 private:
  bool read_exact(void* buf, size_t n);
  bool discard(uint64_t n);
  bool send(std::initializer_list<std::pair<const void*, size_t>> parts);
  bool send_locked(std::initializer_list<std::pair<const void*, size_t>> parts);  // send_mutex_ held
  bool send_option_reply(uint32_t option, uint32_t type, const void* data = nullptr, size_t length = 0);
  bool send_option_error(uint32_t option, uint32_t type, const std::string& message);
  // Returns false to close the connection; sets `done` when transmission begins.
  bool handle_option(uint32_t option, std::vector<uint8_t>& data, bool& done);
  bool handle_info_or_go(uint32_t option, const std::vector<uint8_t>& data, bool& done);
  bool handle_meta_context(uint32_t option, const std::vector<uint8_t>& data);
  bool send_export_info(uint32_t option, const std::string& name, const OpenedExport& e,
                        const std::vector<uint16_t>& requested);
  uint16_t transmission_flags(const block::Device& d) const;
  struct Job {
    Request request;
    std::vector<uint8_t> payload;  // a write's data in, a large read's data out
  };
  // Where a reply goes: into the reading thread's output batch, or straight
  // onto the socket (worker threads).
  enum class Via { batch, direct };
  bool send_read_in_pieces(const Request& r, uint8_t* piece, size_t have, Via via);
  bool send_mapped_read(const Request& r, const std::vector<util::FileSpan>& spans, Via via);
  void transmission();
  void read_requests();
  bool read_request(Job& job);
  bool answer_inline(Job& job);
  bool needs_worker(const Request& r) const;
  bool hand_to_worker(Job&& job);
  bool execute(Job& job, Via via);
  bool emit(Via via, std::initializer_list<std::pair<const void*, size_t>> parts);
  uint8_t* reserve_output(size_t n);
  bool flush_output();
  size_t read_reply_header(uint8_t* h, const Request& r, uint32_t length) const;
  bool reply_error(const Request& r, uint32_t error, const std::string& message, Via via);
  bool reply_ok(const Request& r, Via via);
  bool reply_read(const Request& r, const uint8_t* data, uint32_t length, Via via);
  bool reply_block_status(const Request& r, Via via);
  void log(const std::string& message) const {
    util::log_line(peer_ + (export_name_.empty() ? "" : " export '" + export_name_ + "'") + ": " + message);
  }

  int fd_;
  ExportResolver& resolver_;
  std::string peer_;
  ConnectionOptions options_;
  bool no_zeroes_ = false;
  bool structured_ = false;
  bool base_allocation_ = false;
  std::string meta_export_;  // the export the meta context was set for
  std::string export_name_;
  OpenedExport export_;

  // Transmission (see the note above transmission()).
  std::string stop_reason_ = "disconnected";  // the reading thread's
  uint64_t requests_ = 0;
  std::unique_ptr<uint8_t[]> out_;  // replies waiting for one send
  size_t out_capacity_ = 0;         // grows with the batches the client makes, up to kBatchBytes
  size_t out_used_ = 0;
  util::SocketReader reader_{fd_, options_.busy_poll, [this] { return out_used_ == 0 || flush_output(); }};
  std::mutex send_mutex_;  // one writer on the socket at a time
  std::atomic<bool> broken_{false};  // a reply could not be sent: the client is gone

  // Last: gone (its threads joined) before what they use.
  util::ConnectionWorkers<Job> workers_{{kWorkers, kMaxJobsHeld, kMaxBytesHeld},
                                        [this](Job& job) { return !broken_ && execute(job, Via::direct); },
                                        [this] {
                                          broken_ = true;
                                          ::shutdown(fd_, SHUT_RDWR);  // the reader's recv ends at once
                                        }};
};

// Reading: util::SocketReader (buffered input and busy polling, shared with
// iSCSI; its note has the measurements). Before it waits for the client,
// the replies the client may be waiting for go out.
bool Connection::read_exact(void* buf, size_t n) { return reader_.read_exact(buf, n); }

bool Connection::discard(uint64_t n) {
  uint8_t scratch[65536];
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, sizeof scratch));
    if (!read_exact(scratch, chunk)) return false;
    n -= chunk;
  }
  return true;
}

bool Connection::send(std::initializer_list<std::pair<const void*, size_t>> parts) {
  std::lock_guard lock(send_mutex_);
  return send_locked(parts);
}

bool Connection::send_locked(std::initializer_list<std::pair<const void*, size_t>> parts) {
  iovec iov[4];
  int count = 0;
  for (const auto& [p, n] : parts) {
    if (n == 0) continue;
    iov[count].iov_base = const_cast<void*>(p);
    iov[count].iov_len = n;
    ++count;
  }
  int first = 0;
  while (first < count) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = static_cast<size_t>(count - first);
    ssize_t sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) return false;
    auto left = static_cast<size_t>(sent);
    while (first < count && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < count) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

bool Connection::send_option_reply(uint32_t option, uint32_t type, const void* data, size_t length) {
  uint8_t h[20];
  store_be64(h, kOptReplyMagic);
  store_be32(h + 8, option);
  store_be32(h + 12, type);
  store_be32(h + 16, static_cast<uint32_t>(length));
  return send({{h, sizeof h}, {data, length}});
}

bool Connection::send_option_error(uint32_t option, uint32_t type, const std::string& message) {
  return send_option_reply(option, type, message.data(), message.size());
}

void Connection::run() {
  uint8_t hello[18];
  store_be64(hello, kNbdMagic);
  store_be64(hello + 8, kOptMagic);
  store_be16(hello + 16, kFlagFixedNewstyle | kFlagNoZeroes);
  if (!send({{hello, sizeof hello}})) return;
  uint8_t cf[4];
  if (!read_exact(cf, 4)) {
    log("closed during the handshake");
    return;
  }
  uint32_t client_flags = load_be32(cf);
  if (!(client_flags & kClientFixedNewstyle)) {
    log("refused: the client does not speak fixed newstyle NBD");
    return;
  }
  if (client_flags & ~(kClientFixedNewstyle | kClientNoZeroes)) {
    log("refused: unknown client flags");
    return;
  }
  no_zeroes_ = client_flags & kClientNoZeroes;

  bool done = false;
  while (!done) {
    uint8_t h[16];
    if (!read_exact(h, sizeof h)) {
      log("closed during option negotiation");
      return;
    }
    if (load_be64(h) != kOptMagic) {
      log("dropped: bad option magic");
      return;
    }
    uint32_t option = load_be32(h + 8), length = load_be32(h + 12);
    if (length > kMaxOptionLength) {
      if (option == kOptExportName || length > kMaxDiscard || !discard(length)) {
        log("dropped: option " + std::to_string(option) + " of " + std::to_string(length) + " bytes");
        return;
      }
      if (!send_option_error(option, kRepErrTooBig, "option data larger than 64 KiB")) return;
      continue;
    }
    std::vector<uint8_t> data(length);
    if (length && !read_exact(data.data(), length)) return;
    // The client has asked for its export: what is left (opening it, which
    // may wait on the store when many PCs boot at once) is our time, not
    // the peer's, and must not count against its handshake deadline.
    if ((option == kOptExportName || option == kOptGo) && options_.on_established) options_.on_established();
    if (!handle_option(option, data, done)) return;
  }
  transmission();
}

bool Connection::handle_option(uint32_t option, std::vector<uint8_t>& data, bool& done) {
  switch (option) {
    case kOptExportName: {
      std::string name(data.begin(), data.end());
      try {
        export_ = resolver_.open(name);
      } catch (const util::Error& e) {
        export_name_ = name;
        log(std::string("refused: ") + e.what());
        return false;  // the protocol has no error reply for EXPORT_NAME
      }
      export_name_ = name;
      if (meta_export_ != name) base_allocation_ = false;
      uint8_t reply[10 + 124] = {};
      store_be64(reply, export_.device->size());
      store_be16(reply + 8, transmission_flags(*export_.device));
      if (!send({{reply, no_zeroes_ ? size_t{10} : sizeof reply}})) return false;
      log("connected (export name), " + export_.description);
      done = true;
      return true;
    }
    case kOptAbort:
      send_option_reply(option, kRepAck);
      return false;
    case kOptList: {
      if (!data.empty()) return send_option_error(option, kRepErrInvalid, "NBD_OPT_LIST takes no data");
      std::vector<std::pair<std::string, std::string>> exports;
      try {
        exports = resolver_.list();
      } catch (const util::Error& e) {
        return send_option_error(option, kRepErrShutdown, e.what());
      }
      for (const auto& [name, description] : exports) {
        std::vector<uint8_t> body(4 + name.size() + description.size());
        store_be32(body.data(), static_cast<uint32_t>(name.size()));
        std::memcpy(body.data() + 4, name.data(), name.size());
        std::memcpy(body.data() + 4 + name.size(), description.data(), description.size());
        if (!send_option_reply(option, kRepServer, body.data(), body.size())) return false;
      }
      return send_option_reply(option, kRepAck);
    }
    case kOptStructuredReply:
      if (!data.empty()) return send_option_error(option, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
      structured_ = true;
      return send_option_reply(option, kRepAck);
    case kOptInfo:
    case kOptGo:
      return handle_info_or_go(option, data, done);
    case kOptListMetaContext:
    case kOptSetMetaContext:
      return handle_meta_context(option, data);
    case kOptStartTls:
      return send_option_error(option, kRepErrUnsup, "TLS is not offered by this server");
    default:
      return send_option_error(option, kRepErrUnsup, "option " + std::to_string(option) + " is not supported");
  }
}

bool Connection::handle_info_or_go(uint32_t option, const std::vector<uint8_t>& data, bool& done) {
  if (data.size() < 6) return send_option_error(option, kRepErrInvalid, "option data too short");
  uint32_t name_len = load_be32(data.data());
  if (uint64_t{name_len} + 6 > data.size()) return send_option_error(option, kRepErrInvalid, "export name length past the option data");
  std::string name(data.begin() + 4, data.begin() + 4 + name_len);
  uint16_t n = load_be16(data.data() + 4 + name_len);
  if (4 + uint64_t{name_len} + 2 + 2 * uint64_t{n} != data.size()) {
    return send_option_error(option, kRepErrInvalid, "information request count does not match the option length");
  }
  std::vector<uint16_t> requested;
  for (uint16_t i = 0; i < n; ++i) requested.push_back(load_be16(data.data() + 4 + name_len + 2 + 2 * i));

  OpenedExport e;
  try {
    e = option == kOptInfo ? resolver_.describe(name) : resolver_.open(name);
  } catch (const util::Error& err) {
    util::log_line(peer_ + ": unknown export '" + name + "': " + err.what());
    return send_option_error(option, kRepErrUnknown, err.what());
  }
  if (!send_export_info(option, name, e, requested)) return false;
  if (option == kOptInfo) {
    e = {};  // released before the ACK, as a probe holds nothing
    return send_option_reply(option, kRepAck);
  }
  if (!send_option_reply(option, kRepAck)) return false;
  export_ = std::move(e);
  export_name_ = name;
  if (meta_export_ != name) base_allocation_ = false;
  log(std::string("connected, ") + export_.description + (structured_ ? ", structured replies" : "") +
      (base_allocation_ ? ", base:allocation" : ""));
  done = true;
  return true;
}

bool Connection::send_export_info(uint32_t option, const std::string& name, const OpenedExport& e,
                                  const std::vector<uint16_t>& requested) {
  uint8_t info[12];
  store_be16(info, kInfoExport);
  store_be64(info + 2, e.device->size());
  store_be16(info + 10, transmission_flags(*e.device));
  if (!send_option_reply(option, kRepInfo, info, sizeof info)) return false;
  for (uint16_t type : requested) {
    if (type == kInfoBlockSize) {
      uint8_t b[14];
      store_be16(b, kInfoBlockSize);
      store_be32(b + 2, kMinBlockSize);
      store_be32(b + 6, kPreferredBlockSize);
      store_be32(b + 10, kMaxPayload);
      if (!send_option_reply(option, kRepInfo, b, sizeof b)) return false;
    } else if (type == kInfoName || type == kInfoDescription) {
      const std::string& text = type == kInfoName ? name : e.description;
      std::vector<uint8_t> b(2 + text.size());
      store_be16(b.data(), type);
      std::memcpy(b.data() + 2, text.data(), text.size());
      if (!send_option_reply(option, kRepInfo, b.data(), b.size())) return false;
    }
  }
  return true;
}

bool Connection::handle_meta_context(uint32_t option, const std::vector<uint8_t>& data) {
  if (option == kOptSetMetaContext && !structured_) {
    return send_option_error(option, kRepErrInvalid, "negotiate structured replies before meta contexts");
  }
  if (data.size() < 8) return send_option_error(option, kRepErrInvalid, "option data too short");
  uint32_t name_len = load_be32(data.data());
  if (uint64_t{name_len} + 8 > data.size()) return send_option_error(option, kRepErrInvalid, "export name length past the option data");
  std::string name(data.begin() + 4, data.begin() + 4 + name_len);
  size_t pos = 4 + name_len;
  uint32_t queries = load_be32(data.data() + pos);
  pos += 4;
  std::vector<std::string> wanted;
  for (uint32_t i = 0; i < queries; ++i) {
    if (pos + 4 > data.size()) return send_option_error(option, kRepErrInvalid, "query past the option data");
    uint32_t len = load_be32(data.data() + pos);
    pos += 4;
    if (len > data.size() - pos) return send_option_error(option, kRepErrInvalid, "query past the option data");
    wanted.emplace_back(data.begin() + static_cast<long>(pos), data.begin() + static_cast<long>(pos + len));
    pos += len;
  }
  if (pos != data.size()) return send_option_error(option, kRepErrInvalid, "trailing bytes after the queries");
  try {
    resolver_.describe(name);  // only whether it exists; released at once
  } catch (const util::Error& e) {
    return send_option_error(option, kRepErrUnknown, e.what());
  }
  bool allocation = false;
  if (wanted.empty()) allocation = option == kOptListMetaContext;  // list: everything we have
  for (const auto& q : wanted) allocation = allocation || q == "base:allocation" || (option == kOptListMetaContext && q == "base:");
  if (option == kOptSetMetaContext) {
    base_allocation_ = allocation;
    meta_export_ = name;
  }
  if (allocation) {
    const std::string ctx = "base:allocation";
    std::vector<uint8_t> b(4 + ctx.size());
    store_be32(b.data(), kBaseAllocationContextId);
    std::memcpy(b.data() + 4, ctx.data(), ctx.size());
    if (!send_option_reply(option, kRepMetaContext, b.data(), b.size())) return false;
  }
  return send_option_reply(option, kRepAck);
}

uint16_t Connection::transmission_flags(const block::Device& d) const {
  uint16_t f = kTxHasFlags | kTxSendFlush | kTxSendFua | kTxSendCache;
  if (d.read_only()) f |= kTxReadOnly;
  else f |= kTxSendTrim | kTxSendWriteZeroes | kTxSendFastZero;
  if (structured_) f |= kTxSendDf;
  if (d.shared_between_connections()) f |= kTxCanMultiConn;
  return f;
}

bool Connection::emit(Via via, std::initializer_list<std::pair<const void*, size_t>> parts) {
  if (via == Via::direct) return send(parts);
  size_t total = 0;
  for (const auto& part : parts) total += part.second;
  uint8_t* p = reserve_output(total);
  if (p == nullptr) return !broken_ && flush_output() && send(parts);  // too big to batch
  for (const auto& [data, n] : parts) {
    if (n) std::memcpy(p, data, n);
    p += n;
  }
  out_used_ += total;
  return true;
}

// Room for `n` more bytes of replies (sending what is there first if need
// be), or nullptr when `n` is more than a batch holds or the send failed.
uint8_t* Connection::reserve_output(size_t n) {
  if (n > kBatchBytes || broken_) return nullptr;
  if (out_used_ + n > out_capacity_ && out_capacity_ < kBatchBytes) {
    // A client waiting for each reply needs a few KiB; one with many reads
    // in flight gets room for a whole round of them. Idle connections stay small.
    size_t grown = std::min(kBatchBytes, std::max({out_used_ + n, 2 * out_capacity_, size_t{16} << 10}));
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(grown);
    if (out_used_) std::memcpy(bigger.get(), out_.get(), out_used_);
    out_ = std::move(bigger);
    out_capacity_ = grown;
  }
  if (out_used_ + n > out_capacity_ && !flush_output()) return nullptr;
  return out_.get() + out_used_;
}

bool Connection::flush_output() {
  size_t n = std::exchange(out_used_, 0);
  if (n == 0) return !broken_;
  if (send({{out_.get(), n}})) return true;
  broken_ = true;
  return false;
}

size_t Connection::read_reply_header(uint8_t* h, const Request& r, uint32_t length) const {
  if (!structured_) {
    simple_reply_header(h, 0, r.cookie);
    return 16;
  }
  chunk_header(h, kReplyOffsetData, r.cookie, 8 + length);
  store_be64(h + 20, r.offset);
  return 28;
}

bool Connection::reply_error(const Request& r, uint32_t error, const std::string& message, Via via) {
  if (!structured_) {
    uint8_t h[16];
    simple_reply_header(h, error, r.cookie);
    return emit(via, {{h, sizeof h}});
  }
  std::string msg = message.substr(0, 4096);
  uint8_t h[20 + 6];
  chunk_header(h, kReplyError, r.cookie, static_cast<uint32_t>(6 + msg.size()));
  store_be32(h + 20, error);
  store_be16(h + 24, static_cast<uint16_t>(msg.size()));
  return emit(via, {{h, sizeof h}, {msg.data(), msg.size()}});
}

bool Connection::reply_ok(const Request& r, Via via) {
  uint8_t h[20];
  if (!structured_) {
    simple_reply_header(h, 0, r.cookie);
    return emit(via, {{h, 16}});
  }
  chunk_header(h, kReplyNone, r.cookie, 0);
  return emit(via, {{h, sizeof h}});
}

bool Connection::reply_read(const Request& r, const uint8_t* data, uint32_t length, Via via) {
  uint8_t h[28];
  size_t n = read_reply_header(h, r, length);
  return emit(via, {{h, n}, {data, length}});
}

// A read larger than a piece: its first `have` bytes are in `piece` (a
// buffer of kReadPiece bytes); the rest is read into it a piece at a time,
// each sent before the next is read, under one hold of the send lock so the
// reply stays whole on the wire. A read that fails after the header went
// out cannot be reported any more: the connection ends (logged), which the
// client sees as an I/O error, as it would for a lost server.
bool Connection::send_read_in_pieces(const Request& r, uint8_t* piece, size_t have, Via via) {
  if (via == Via::batch && !flush_output()) return false;
  std::lock_guard lock(send_mutex_);
  uint8_t h[28];
  size_t n = read_reply_header(h, r, r.length);
  if (!send_locked({{h, n}, {piece, have}})) return false;
  for (uint64_t done = have; done < r.length;) {
    size_t length = static_cast<size_t>(std::min<uint64_t>(kReadPiece, r.length - done));
    if (int rc = export_.device->read(r.offset + done, length, piece); rc != 0) {
      log("read of " + std::to_string(length) + " bytes at " + std::to_string(r.offset + done) +
          " failed in the middle of a reply, which cannot carry the error: closing: " + std::strerror(rc));
      return false;
    }
    if (!send_locked({{piece, length}})) return false;
    done += length;
  }
  return true;
}

// A cached read mapped to files: the header, then the data straight
// from the page cache. Past the header an error cannot be reported, as in
// send_read_in_pieces; map_read maps only what seems cached, which makes
// one unlikely.
bool Connection::send_mapped_read(const Request& r, const std::vector<util::FileSpan>& spans, Via via) {
  if (via == Via::batch && !flush_output()) return false;
  std::lock_guard lock(send_mutex_);
  uint8_t h[28];
  size_t n = read_reply_header(h, r, r.length);
  if (util::send_spans(fd_, h, n, spans)) return true;
  if (errno != EPIPE && errno != ECONNRESET)
    log("sending " + std::to_string(r.length) + " bytes at " + std::to_string(r.offset) + " failed: " + std::strerror(errno));
  return false;
}

bool Connection::reply_block_status(const Request& r, Via via) {
  std::vector<vhd::Extent> extents;
  int rc = export_.device->extents(r.offset, r.length, extents);
  if (rc != 0) return reply_error(r, to_nbd_error(rc), "block status failed", via);
  // Descriptors cover exactly the range asked for (never past it), at most
  // one with REQ_ONE, and each length fits 32 bits.
  std::vector<uint8_t> body(4);
  store_be32(body.data(), kBaseAllocationContextId);
  uint64_t end = r.offset + r.length;
  constexpr size_t kMaxDescriptors = 1 << 16;
  for (const auto& e : extents) {
    uint64_t s = std::max(e.offset, r.offset), stop = std::min(end, e.offset + e.length);
    while (s < stop) {
      uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(stop - s, 0x80000000u));
      size_t at = body.size();
      body.resize(at + 8);
      store_be32(body.data() + at, len);
      store_be32(body.data() + at + 4, e.data ? 0 : (kStateHole | kStateZero));
      s += len;
      if ((r.flags & kCmdFlagReqOne) || (body.size() - 4) / 8 >= kMaxDescriptors) break;
    }
    if ((r.flags & kCmdFlagReqOne) || (body.size() - 4) / 8 >= kMaxDescriptors) break;
  }
  uint8_t h[20];
  chunk_header(h, kReplyBlockStatus, r.cookie, static_cast<uint32_t>(body.size()));
  return emit(via, {{h, sizeof h}, {body.data(), body.size()}});
}

// Transmission. The connection's thread reads requests and answers at once
// whatever needs no wait for a disk: a read whose data is in the page cache
// or in RAM (Device::try_read, i.e. preadv2 with RWF_NOWAIT), a write into
// the write cache's page cache, block status, every error. Those replies
// collect in one output buffer that goes out in a single send when no
// further request is already buffered (or the buffer is full): requests
// that arrive together cost one recv and one send between them, and a
// cached read costs no thread hand-off. We measured the hand-off: a
// leader/follower pool serving every request cost a context switch and a
// futex per request and was 8-15 % slower than nbdkit on random cached
// reads (docs/benchmarks.md). What may wait (a read that must go to the
// disk, FLUSH, a write with FUA) and large reads (see answer_inline) go
// to up to kWorkers threads of this connection, which send their replies themselves when done, so one
// slow read does not hold up the cached ones behind it. Replies may then go
// out of order, as the protocol allows (cookies match them up). At most
// kMaxJobsHeld requests and kMaxBytesHeld of their payloads wait for
// workers; past that the reader stops reading, which bounds what a client
// can make us hold.
void Connection::transmission() {
  read_requests();
  flush_output();
  workers_.close();  // they finish what is queued (DISC: "handle all outstanding requests") and end
  export_.device->flush();
  if (broken_ && stop_reason_ == "disconnected") stop_reason_ = "client went away mid-reply";
  log(stop_reason_ + " (" + std::to_string(requests_) + " requests served)");
}

void Connection::read_requests() {
  while (!broken_) {
    Job job;
    if (!read_request(job)) return;
    if (job.request.type == kCmdWrite && job.request.length > kMaxPayload) continue;  // answered while reading
    bool ok = needs_worker(job.request) ? hand_to_worker(std::move(job)) : answer_inline(job);
    if (!ok) {
      broken_ = true;
      return;
    }
  }
}

bool Connection::needs_worker(const Request& r) const {
  switch (r.type) {
    case kCmdFlush:
      return true;
    case kCmdWrite:
    case kCmdTrim:
    case kCmdWriteZeroes:
      return (r.flags & kCmdFlagFua) != 0;
    default:
      return false;
  }
}

// Runs on the reading thread. A read is tried straight into the output
// buffer (header, then data), so a cached read is copied once, from the
// page cache to the buffer the send takes it from.
bool Connection::answer_inline(Job& job) {
  const Request& r = job.request;
  block::Device& dev = *export_.device;
  const uint64_t size = dev.size();
  const size_t header = structured_ ? 28 : 16;
  if (r.type != kCmdRead || !valid_read(r, size)) return execute(job, Via::batch);
  // Large reads go to the workers, cached or not: while one worker's reply
  // is on the socket the next is being read, on the other CPU, and the
  // reader goes on reading requests. Answered here one after another, 1 MiB
  // sequential reads reached 0.75x nbdkit's thread pool; through the
  // workers (sent from the page cache, send_mapped_read) they match it with
  // half its CPU per byte (docs/benchmarks.md).
  if (r.length >= kToWorkersFrom) return hand_to_worker(std::move(job));
  uint8_t* p = reserve_output(header + r.length);
  if (p == nullptr) return false;
  if (dev.try_read(r.offset, r.length, p + header) != 0) return hand_to_worker(std::move(job));
  read_reply_header(p, r, r.length);
  out_used_ += header + r.length;
  return true;
}

// What a job held for a worker counts against kMaxBytesHeld: a write's
// payload, or the buffer a read will fill (one piece at most).
uint64_t held_bytes(const Request& r, const std::vector<uint8_t>& payload) {
  return payload.size() + (r.type == kCmdRead ? std::min<uint64_t>(r.length, kReadPiece) : 0);
}

// Waiting for room (util/connection_workers.h), the replies the client may
// be waiting for go out first, before it sends more.
bool Connection::hand_to_worker(Job&& job) {
  const uint64_t bytes = held_bytes(job.request, job.payload);
  return workers_.push(std::move(job), bytes, [this] { return flush_output(); });
}

// Returns false when the reader must stop (stop_reason_ says why). Runs on
// the reading thread.
bool Connection::read_request(Job& job) {
  if (options_.stopping && options_.stopping->load()) {
    stop_reason_ = "closing: the server is stopping";
    return false;
  }
  uint8_t raw[kRequestSize];
  if (!read_exact(raw, sizeof raw)) {
    stop_reason_ = options_.stopping && options_.stopping->load() ? "closing: the server is stopping" : "disconnected";
    return false;
  }
  if (!parse_request(raw, job.request)) {
    stop_reason_ = "dropped: bad request magic";
    return false;
  }
  ++requests_;
  const Request& r = job.request;
  if (r.type == kCmdDisc) {
    stop_reason_ = "disconnected by request";
    return false;
  }
  if (r.type != kCmdWrite) return true;
  if (r.length > kMaxPayload) {
    // The payload must be consumed to stay in step with the client.
    if (r.length > kMaxDiscard || !discard(r.length)) {
      stop_reason_ = "dropped: write of " + std::to_string(r.length) + " bytes";
      return false;
    }
    if (!reply_error(r, kErrInval, "write larger than 32 MiB", Via::batch)) {
      stop_reason_ = "client went away mid-reply";
      return false;
    }
    return true;
  }
  job.payload.resize(r.length);
  if (r.length && !read_exact(job.payload.data(), r.length)) {
    stop_reason_ = "disconnected mid-request";
    return false;
  }
  return true;
}

// Runs one request on the device and replies. Safe on any thread: the
// device is thread-safe, a worker's reply goes out in one locked send, and
// only the reading thread uses Via::batch. Returns false when the reply
// could not be sent.
bool Connection::execute(Job& job, Via via) {
  block::Device& dev = *export_.device;
  const Request& r = job.request;
  const uint64_t size = dev.size();
  const bool in_range = in_export(r, size);
  switch (r.type) {
    case kCmdRead: {
      if (!valid_read(r, size))
        return reply_error(r, kErrInval, r.length > kMaxPayload ? "read larger than 32 MiB" : "read past the end of the export", via);
      // Only workers get here with a valid read: the read waits on the
      // disk anyway, so a buffer of its own costs nothing that shows, and
      // worker threads hold no memory between jobs.
      if (r.length >= kToWorkersFrom) {
        // Mapped to version files and cached: no copy at all. Otherwise the
        // read below, which can still report an error (a reply already
        // begun cannot).
        std::vector<util::FileSpan> spans;
        if (dev.map_read(r.offset, r.length, spans) == 0) return send_mapped_read(r, spans, via);
      }
      std::vector<uint8_t>& data = job.payload;
      const size_t first = std::min<size_t>(r.length, kReadPiece);
      data.resize(first);
      if (int rc = dev.read(r.offset, first, data.data()); rc != 0) {
        log("read of " + std::to_string(first) + " bytes at " + std::to_string(r.offset) + " failed: " + std::strerror(rc));
        return reply_error(r, to_nbd_error(rc), std::strerror(rc), via);
      }
      if (r.length > first) return send_read_in_pieces(r, data.data(), first, via);
      return reply_read(r, data.data(), r.length, via);
    }
    case kCmdWrite: {
      if (dev.read_only()) return reply_error(r, kErrPerm, "the export is read-only", via);
      if (!in_range) return reply_error(r, kErrNoSpc, "write past the end of the export", via);
      if (r.length == 0) return reply_ok(r, via);
      int rc = dev.write(r.offset, r.length, job.payload.data(), r.flags & kCmdFlagFua);
      // Written: the payload is not kept while the reply waits for a client
      // that may not be reading.
      std::vector<uint8_t>().swap(job.payload);
      if (rc != 0) {
        log("write of " + std::to_string(r.length) + " bytes at " + std::to_string(r.offset) + " failed: " + std::strerror(rc));
        return reply_error(r, to_nbd_error(rc), std::strerror(rc), via);
      }
      return reply_ok(r, via);
    }
    case kCmdFlush:
      if (int rc = dev.flush(); rc != 0) return reply_error(r, to_nbd_error(rc), std::strerror(rc), via);
      return reply_ok(r, via);
    case kCmdTrim:
    case kCmdWriteZeroes: {
      if (dev.read_only()) return reply_error(r, kErrPerm, "the export is read-only", via);
      if (!in_range) return reply_error(r, kErrNoSpc, "range past the end of the export", via);
      if (r.length == 0) return reply_ok(r, via);
      bool fua = r.flags & kCmdFlagFua;
      int rc = r.type == kCmdTrim ? dev.trim(r.offset, r.length, fua) : dev.write_zeroes(r.offset, r.length, fua);
      return rc != 0 ? reply_error(r, to_nbd_error(rc), std::strerror(rc), via) : reply_ok(r, via);
    }
    case kCmdCache:
      return in_range ? reply_ok(r, via) : reply_error(r, kErrInval, "range past the end of the export", via);
    case kCmdBlockStatus:
      if (!structured_ || !base_allocation_) return reply_error(r, kErrInval, "no meta context was negotiated", via);
      if (r.length == 0 || !in_range) return reply_error(r, kErrInval, "range empty or past the end of the export", via);
      return reply_block_status(r, via);
    default:
      return reply_error(r, kErrInval, "unknown command " + std::to_string(r.type), via);
  }
}

}  // namespace

void serve_connection(int fd, ExportResolver& resolver, const std::string& peer, const ConnectionOptions& options) {
  try {
    Connection c(fd, resolver, peer, options);
    c.run();
  } catch (const std::exception& e) {
    util::log_line(peer + ": connection failed: " + e.what());
  }
}

}  // namespace bootfleet::nbd
