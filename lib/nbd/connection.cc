#include "nbd/connection.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "nbd/protocol.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/log.h"

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

class Connection {
 public:
  Connection(int fd, ExportResolver& resolver, std::string peer, const ConnectionOptions& options)
      : fd_(fd), resolver_(resolver), peer_(std::move(peer)), options_(options) {}
  ~Connection() {
    if (export_.release) export_.release();
  }
  void run();

 private:
  bool read_exact(void* buf, size_t n);
  bool discard(uint64_t n);
  bool send(std::initializer_list<std::pair<const void*, size_t>> parts);
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
    std::vector<uint8_t> payload;  // a write's data in, a read's data out
  };
  void transmission();
  void serve();
  void maybe_add_thread();
  bool read_request(Job& job);
  bool execute(Job& job);
  bool reply_error(const Request& r, uint32_t error, const std::string& message);
  bool reply_ok(const Request& r);
  bool reply_read(const Request& r, const uint8_t* data, uint32_t length);
  bool reply_block_status(const Request& r);
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
  std::vector<uint8_t> in_ = std::vector<uint8_t>(64 * 1024);  // buffered input
  size_t in_pos_ = 0, in_end_ = 0;

  // Serving threads (see transmission()).
  static constexpr size_t kThreads = 4;
  std::mutex send_mutex_;   // one reply at a time on the socket
  std::mutex input_mutex_;  // one reader of requests at a time; guards in_, stopped_, stop_reason_
  bool stopped_ = false;
  std::string stop_reason_ = "disconnected";
  std::atomic<uint64_t> requests_{0};
  std::mutex threads_mutex_;
  std::vector<std::thread> helpers_;
};

bool Connection::read_exact(void* buf, size_t n) {
  // Input is buffered: with many requests in flight, one recv brings in
  // several request headers, so a 4 KiB read costs about two syscalls
  // (pread, sendmsg) instead of three. Large payloads bypass the buffer.
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    if (in_pos_ < in_end_) {
      size_t k = std::min(n, in_end_ - in_pos_);
      std::memcpy(p, in_.data() + in_pos_, k);
      in_pos_ += k;
      p += k;
      n -= k;
      continue;
    }
    ssize_t got;
    if (n >= in_.size()) {
      got = ::recv(fd_, p, n, 0);
      if (got > 0) {
        p += got;
        n -= static_cast<size_t>(got);
        continue;
      }
    } else {
      got = ::recv(fd_, in_.data(), in_.size(), 0);
      if (got > 0) {
        in_pos_ = 0;
        in_end_ = static_cast<size_t>(got);
        continue;
      }
    }
    if (got < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

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
    e = resolver_.open(name);
  } catch (const util::Error& err) {
    util::log_line(peer_ + ": unknown export '" + name + "': " + err.what());
    return send_option_error(option, kRepErrUnknown, err.what());
  }
  if (!send_export_info(option, name, e, requested)) {
    if (e.release) e.release();
    return false;
  }
  if (option == kOptInfo) {
    if (e.release) e.release();
    return send_option_reply(option, kRepAck);
  }
  if (!send_option_reply(option, kRepAck)) {
    if (e.release) e.release();
    return false;
  }
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
    OpenedExport probe = resolver_.open(name);
    if (probe.release) probe.release();
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

bool Connection::reply_error(const Request& r, uint32_t error, const std::string& message) {
  if (!structured_) {
    uint8_t h[16];
    store_be32(h, kSimpleReplyMagic);
    store_be32(h + 4, error);
    store_be64(h + 8, r.cookie);
    return send({{h, sizeof h}});
  }
  std::string msg = message.substr(0, 4096);
  uint8_t h[20 + 6];
  store_be32(h, kStructuredReplyMagic);
  store_be16(h + 4, kReplyFlagDone);
  store_be16(h + 6, kReplyError);
  store_be64(h + 8, r.cookie);
  store_be32(h + 16, static_cast<uint32_t>(6 + msg.size()));
  store_be32(h + 20, error);
  store_be16(h + 24, static_cast<uint16_t>(msg.size()));
  return send({{h, sizeof h}, {msg.data(), msg.size()}});
}

bool Connection::reply_ok(const Request& r) {
  if (!structured_) {
    uint8_t h[16];
    store_be32(h, kSimpleReplyMagic);
    store_be32(h + 4, 0);
    store_be64(h + 8, r.cookie);
    return send({{h, sizeof h}});
  }
  uint8_t h[20];
  store_be32(h, kStructuredReplyMagic);
  store_be16(h + 4, kReplyFlagDone);
  store_be16(h + 6, kReplyNone);
  store_be64(h + 8, r.cookie);
  store_be32(h + 16, 0);
  return send({{h, sizeof h}});
}

bool Connection::reply_read(const Request& r, const uint8_t* data, uint32_t length) {
  if (!structured_) {
    uint8_t h[16];
    store_be32(h, kSimpleReplyMagic);
    store_be32(h + 4, 0);
    store_be64(h + 8, r.cookie);
    return send({{h, sizeof h}, {data, length}});
  }
  uint8_t h[28];
  store_be32(h, kStructuredReplyMagic);
  store_be16(h + 4, kReplyFlagDone);
  store_be16(h + 6, kReplyOffsetData);
  store_be64(h + 8, r.cookie);
  store_be32(h + 16, 8 + length);
  store_be64(h + 20, r.offset);
  return send({{h, sizeof h}, {data, length}});
}

bool Connection::reply_block_status(const Request& r) {
  std::vector<vhd::Extent> extents;
  int rc = export_.device->extents(r.offset, r.length, extents);
  if (rc != 0) return reply_error(r, to_nbd_error(rc), "block status failed");
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
  store_be32(h, kStructuredReplyMagic);
  store_be16(h + 4, kReplyFlagDone);
  store_be16(h + 6, kReplyBlockStatus);
  store_be64(h + 8, r.cookie);
  store_be32(h + 16, static_cast<uint32_t>(body.size()));
  return send({{h, sizeof h}, {body.data(), body.size()}});
}

// Transmission, leader/follower style (as nbdkit does): each serving thread
// takes the input lock, reads one request (and a write's payload), lets go
// of the lock, runs the request and sends its reply. A client that waits for
// each reply is served by this one thread with no hand-off at all; when
// requests arrive faster than they are answered (more are already buffered
// behind the one just read) another thread joins, up to kThreads, so one
// slow read does not hold up the ones behind it. Replies may then go out of
// order, as the protocol allows (cookies match them up). At most kThreads
// requests are in memory at once, which bounds what a client can make us hold.
void Connection::transmission() {
  serve();
  std::vector<std::thread> helpers;
  {
    std::lock_guard lock(threads_mutex_);
    helpers.swap(helpers_);
  }
  for (auto& t : helpers) t.join();
  export_.device->flush();
  log(stop_reason_ + " (" + std::to_string(requests_.load()) + " requests served)");
}

void Connection::serve() {
  while (true) {
    Job job;
    {
      std::lock_guard lock(input_mutex_);
      if (stopped_) return;
      if (!read_request(job)) {
        stopped_ = true;  // the others finish what they hold, and their replies still go out
        return;
      }
      if (in_pos_ < in_end_) maybe_add_thread();
    }
    if (job.request.type == kCmdWrite && job.request.length > kMaxPayload) continue;  // answered while reading
    if (!execute(job)) {
      std::lock_guard lock(input_mutex_);
      if (!stopped_) stop_reason_ = "client went away mid-reply";
      stopped_ = true;
      ::shutdown(fd_, SHUT_RDWR);
      return;
    }
  }
}

void Connection::maybe_add_thread() {
  std::lock_guard lock(threads_mutex_);
  if (helpers_.size() + 1 < kThreads) helpers_.emplace_back([this] { serve(); });
}

// Called with input_mutex_ held. False ends the connection (stop_reason_ says why).
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
    if (!reply_error(r, kErrInval, "write larger than 32 MiB")) {
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

// Runs one request on the device and sends its reply. Safe on any thread:
// the device is thread-safe and each reply goes out in one locked send.
// Returns false when the reply could not be sent.
bool Connection::execute(Job& job) {
  block::Device& dev = *export_.device;
  const Request& r = job.request;
  const uint64_t size = dev.size();
  const bool in_range = r.offset <= size && r.length <= size - r.offset;
  switch (r.type) {
    case kCmdRead: {
      if (r.length == 0 || r.length > kMaxPayload || !in_range)
        return reply_error(r, kErrInval, r.length > kMaxPayload ? "read larger than 32 MiB" : "read past the end of the export");
      // Reads up to 256 KiB use a buffer kept by the serving thread (grown
      // to the largest such read), so a 4 KiB read costs no allocation;
      // larger ones get their own, so an idle connection holds little.
      constexpr uint32_t kKeptBuffer = 256u << 10;
      thread_local std::vector<uint8_t> kept;
      std::vector<uint8_t>& data = r.length <= kKeptBuffer ? kept : job.payload;
      if (data.size() < r.length) data.resize(r.length);
      if (int rc = dev.read(r.offset, r.length, data.data()); rc != 0) {
        log("read of " + std::to_string(r.length) + " bytes at " + std::to_string(r.offset) + " failed: " + std::strerror(rc));
        return reply_error(r, to_nbd_error(rc), std::strerror(rc));
      }
      return reply_read(r, data.data(), r.length);
    }
    case kCmdWrite: {
      if (dev.read_only()) return reply_error(r, kErrPerm, "the export is read-only");
      if (!in_range) return reply_error(r, kErrNoSpc, "write past the end of the export");
      if (r.length == 0) return reply_ok(r);
      if (int rc = dev.write(r.offset, r.length, job.payload.data(), r.flags & kCmdFlagFua); rc != 0) {
        log("write of " + std::to_string(r.length) + " bytes at " + std::to_string(r.offset) + " failed: " + std::strerror(rc));
        return reply_error(r, to_nbd_error(rc), std::strerror(rc));
      }
      return reply_ok(r);
    }
    case kCmdFlush:
      if (int rc = dev.flush(); rc != 0) return reply_error(r, to_nbd_error(rc), std::strerror(rc));
      return reply_ok(r);
    case kCmdTrim:
    case kCmdWriteZeroes: {
      if (dev.read_only()) return reply_error(r, kErrPerm, "the export is read-only");
      if (!in_range) return reply_error(r, kErrNoSpc, "range past the end of the export");
      if (r.length == 0) return reply_ok(r);
      bool fua = r.flags & kCmdFlagFua;
      int rc = r.type == kCmdTrim ? dev.trim(r.offset, r.length, fua) : dev.write_zeroes(r.offset, r.length, fua);
      return rc != 0 ? reply_error(r, to_nbd_error(rc), std::strerror(rc)) : reply_ok(r);
    }
    case kCmdCache:
      return in_range ? reply_ok(r) : reply_error(r, kErrInval, "range past the end of the export");
    case kCmdBlockStatus:
      if (!structured_ || !base_allocation_) return reply_error(r, kErrInval, "no meta context was negotiated");
      if (r.length == 0 || !in_range) return reply_error(r, kErrInval, "range empty or past the end of the export");
      return reply_block_status(r);
    default:
      return reply_error(r, kErrInval, "unknown command " + std::to_string(r.type));
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
