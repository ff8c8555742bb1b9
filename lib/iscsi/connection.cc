#include "iscsi/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>

#include "iscsi/pdu.h"
#include "iscsi/scsi.h"
#include "util/bytes.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/file_send.h"
#include "util/log.h"
#include "util/net.h"
#include "util/connection_workers.h"
#include "util/socket_reader.h"

namespace bootfleet::iscsi {

SessionTable::~SessionTable() {
  kept_.clear();  // releases what was kept (block::ReleaseOnce) while the table is whole
}

uint16_t SessionTable::new_tsih() {
  std::lock_guard lock(mutex_);
  uint16_t t = next_tsih_++;
  if (next_tsih_ == 0) next_tsih_ = 1;
  return t;
}

bool SessionTable::take(const std::string& key, uint64_t connection, uint16_t tsih, std::function<void()> kill,
                        std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  auto it = slots_.find(key);
  if (it != slots_.end() && it->second.connection != connection) {
    it->second.kill();
    if (!released_.wait_for(lock, wait, [&] { return slots_.find(key) == slots_.end(); })) return false;
  }
  slots_[key] = {connection, tsih, std::move(kill)};
  return true;
}

void SessionTable::release(const std::string& key, uint64_t connection) {
  std::lock_guard lock(mutex_);
  auto it = slots_.find(key);
  if (it != slots_.end() && it->second.connection == connection) {
    slots_.erase(it);
    released_.notify_all();
  }
}

void SessionTable::retain(const std::string& key, uint64_t connection, uint16_t tsih, const std::string& target,
                          OpenedTarget opened, std::chrono::seconds retain) {
  std::optional<OpenedTarget> replaced;
  {
    std::lock_guard lock(mutex_);
    auto old = kept_.find(key);
    if (old != kept_.end()) replaced = std::move(old->second.opened);
    kept_[key] = {tsih, target, std::move(opened), std::chrono::steady_clock::now() + retain};
    auto it = slots_.find(key);
    if (it != slots_.end() && it->second.connection == connection) slots_.erase(it);
    released_.notify_all();
  }
}  // `replaced` releases itself here, outside the lock

std::optional<OpenedTarget> SessionTable::reclaim(const std::string& key, const std::string& target) {
  std::optional<OpenedTarget> out, other;
  {
    std::lock_guard lock(mutex_);
    auto it = kept_.find(key);
    if (it == kept_.end()) return std::nullopt;
    // Another target under the same name and ISID is another session: what
    // was kept goes.
    (it->second.target == target ? out : other) = std::move(it->second.opened);
    kept_.erase(it);
  }
  return out;  // `other` releases itself, outside the lock
}

uint16_t SessionTable::tsih_of(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = slots_.find(key);
  if (it != slots_.end()) return it->second.tsih;
  auto k = kept_.find(key);
  return k == kept_.end() ? 0 : k->second.tsih;
}

void SessionTable::expire() {
  std::vector<OpenedTarget> gone;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = kept_.begin(); it != kept_.end();) {
      if (it->second.until <= now) {
        gone.push_back(std::move(it->second.opened));
        it = kept_.erase(it);
      } else {
        ++it;
      }
    }
  }
}  // `gone` releases itself, outside the lock

namespace {

using util::load_be16;
using util::load_be32;
using util::store_be16;
using util::store_be32;

// Bytes of the text keys of one login or text exchange, across C-bit PDUs.
constexpr size_t kMaxTextBytes = 64 * 1024;
// Largest AHS we read (the field allows 1020 bytes).
constexpr uint32_t kMaxAhs = 1020;
// Output gathered before a send; larger Data-In goes out from its buffer.
constexpr size_t kBatchBytes = 256 * 1024;
// The read buffer is kept between commands up to this size.
constexpr size_t kKeptBuffer = 8u << 20;
// A streamed READ goes to the disk in pieces of this size.
constexpr uint32_t kReadPiece = 1u << 20;
// Cached pieces from this size on go out from the page cache without a copy.
constexpr uint32_t kSendFileFrom = 128u << 10;
// READs that return this much or more go to the connection's workers
// (util/connection_workers.h has why; the same size as NBD's).
constexpr uint32_t kToWorkersFrom = 128u << 10;
// What a worker may hold for a read it must copy: one piece.
uint64_t held_bytes(uint32_t sending) { return std::min(sending, kReadPiece); }

std::atomic<uint64_t> connection_counter{0};

void residual_of(uint32_t wanted, uint32_t edtl, uint8_t& flags, uint32_t& residual);

// Serial number arithmetic (RFC 1982) on 32-bit sequence numbers.
bool sn_lt(uint32_t a, uint32_t b) { return a != b && static_cast<int32_t>(a - b) < 0; }
bool sn_le(uint32_t a, uint32_t b) { return a == b || sn_lt(a, b); }

std::string hex_isid(const uint8_t* isid) { return util::to_hex(std::span<const uint8_t>(isid, 6)); }

class Connection {
 public:
  Connection(int fd, Targets& targets, SessionTable& sessions, std::string peer, const ConnectionOptions& options)
      : fd_(fd),
        id_(++connection_counter),
        targets_(targets),
        sessions_(sessions),
        peer_(std::move(peer)),
        options_(options),
        negotiator_(options.limits) {}
  ~Connection();
  void run();

 private:
  struct Task {  // a command waiting for solicited Data-Out
    uint32_t itt = 0;
    uint32_t ttt = kReservedTag;
    int64_t lun = 0;
    uint64_t lun_field = 0;
    uint8_t cdb[16] = {};
    uint32_t edtl = 0;
    uint32_t total = 0;            // bytes the initiator sends
    bool streamed = false;         // a WRITE: each burst goes to the disk as it completes
    LogicalUnit::BlockIo io;       // (streamed)
    uint64_t write_limit = 0;      // (streamed) bytes of the transfer the CDB covers
    Status error;                  // (streamed) the first failure
    std::unique_ptr<uint8_t[]> buffer;  // all the data, or (streamed) the burst at hand
    uint32_t buffer_size = 0;
    uint32_t received = 0;         // bytes received so far
    uint32_t burst_start = 0, burst_end = 0;  // the outstanding R2T's range
    uint32_t next_datasn = 0;
    uint32_t r2tsn = 0;
    bool r2t_outstanding = false;
  };
  enum class Read { ok, closed, broken };
  // A READ of blocks, answered on the reading thread or on a worker.
  struct ReadJob {
    LogicalUnit::BlockIo io;
    uint32_t itt = 0;
    uint64_t lun_field = 0;
    uint32_t edtl = 0;
    // The bytes the blocks asked for, and what of them the initiator gets.
    uint64_t total() const { return uint64_t{io.count} * kBlockSize; }
    uint32_t sending() const { return static_cast<uint32_t>(std::min<uint64_t>(total(), edtl)); }
    // What is read from the disk to send the `n` bytes at `offset`: whole
    // blocks (an initiator may take less than a block), within the command.
    uint32_t piece_length(uint32_t offset, uint32_t n) const {
      return static_cast<uint32_t>(std::min<uint64_t>((n + kBlockSize - 1) / kBlockSize * kBlockSize, total() - offset));
    }
  };
  // What answering a READ needs besides the job: the reading thread's are
  // members, kept between commands; a worker's live for one job.
  struct ReadScratch {
    DataBuffer* buffer;
    std::vector<util::FileSpan>* mapped;
    bool worker;  // send at once (the reading thread's replies wait for its batch)
    bool have_first = false;  // the first piece is in `buffer` already (read by the caller)
  };
  // What a PDU's StatSN field gets (RFC 7143 §4.2.2.2): the next StatSN
  // (a response), the current one unchanged (R2T, Reject, login steps that
  // do not count), or 0 (Data-In without status).
  enum class StatSn { next, keep, zero };

  // Framing. Everything that goes out is sent or appended to out_ under
  // send_mutex_ (the `_locked` functions need it held), and StatSN is
  // assigned there: responses reach the wire in the order of their StatSN
  // even when workers answer some of them.
  bool read_exact(void* buf, size_t n);
  Read read_pdu(Pdu& pdu);
  bool flush_output();
  bool flush_locked();
  void append_output(const void* p, size_t n);
  void queue_pdu(Pdu& pdu, const uint8_t* data, uint32_t length, StatSn sn);
  void queue_pdu_locked(Pdu& pdu, const uint8_t* data, uint32_t length, StatSn sn);
  // Data-In PDUs for `length` bytes at `buffer_offset` of the command's
  // data: from `data`, or, when `mapped` is not empty, straight from the
  // files it names (util/file_send.h; then `data` is unused). send_mutex_
  // held.
  bool send_data_in_locked(uint32_t itt, uint64_t lun, const uint8_t* data, uint32_t length, uint32_t buffer_offset,
                           uint32_t& datasn, bool with_status, uint8_t status, uint8_t residual_flags,
                           uint32_t residual, std::span<const util::FileSpan> mapped = {});
  void fill_sequence_numbers_locked(Pdu& pdu, StatSn sn);

  // Login.
  bool login();
  bool login_reject(const Pdu& request, uint16_t status, const std::string& why);
  bool security_keys(const std::vector<KeyValue>& keys, std::vector<uint8_t>& answer, uint16_t& status,
                     std::string& why);
  bool enter_full_feature(const Pdu& request, uint16_t& status, std::string& why);

  // Full feature phase.
  void full_feature();
  bool accept_cmdsn(const Pdu& pdu);
  bool handle(Pdu& pdu);
  bool scsi_command(Pdu& pdu);
  bool data_out(Pdu& pdu);
  bool task_management(const Pdu& pdu);
  bool text(const Pdu& pdu);
  bool logout(const Pdu& pdu);
  bool nop_out(const Pdu& pdu);
  bool reject(const Pdu& pdu, uint8_t reason);
  void send_r2t(Task& task);
  void run_task(const uint8_t* cdb, int64_t lun, uint32_t itt, uint64_t lun_field, uint32_t edtl, bool reading,
                std::span<const uint8_t> data);
  void respond(uint32_t itt, const Status& status, uint8_t residual_flags, uint32_t residual);
  void respond_locked(uint32_t itt, const Status& status, uint8_t residual_flags, uint32_t residual);
  void start_next_task();
  // Answers a READ (Data-In, status); false when the connection broke.
  bool stream_read(const ReadJob& job, ReadScratch scratch);
  bool hand_to_worker(ReadJob&& job);
  bool run_on_worker(ReadJob& job);
  // Waits for the reads on workers (task management, logout).
  util::ConnectionWorkers<ReadJob>::Cancelled cancel_reads(const std::function<bool(const ReadJob&)>& select);
  void drain_reads();
  void close_workers();
  void write_burst(Task& t, const uint8_t* data, uint32_t start, uint32_t length);
  void finish_write(Task& t);
  std::string send_targets(const std::string& which);

  void log(const std::string& message) const {
    std::string who = peer_;
    if (!initiator_.empty()) who += " " + initiator_;
    if (!target_.empty()) who += " target " + target_;
    util::log_line("iscsi " + who + ": " + message);
  }

  int fd_;
  uint64_t id_;
  Targets& targets_;
  SessionTable& sessions_;
  std::string peer_;
  ConnectionOptions options_;
  Negotiator negotiator_;

  std::vector<uint8_t> out_;  // send_mutex_
  std::atomic<bool> out_pending_{false};  // out_ is not empty
  util::SocketReader reader_{fd_, options_.busy_poll, [this] { return flush_output(); }};
  std::mutex send_mutex_;  // out_, stat_sn_ and the socket's sending side
  std::atomic<bool> broken_{false};  // a send failed: the initiator is gone
  bool header_digest_ = false, data_digest_ = false;  // in force (from the end of the login)

  // Login state.
  std::string initiator_, target_;
  bool discovery_ = false;
  uint8_t isid_[6] = {};
  uint16_t tsih_ = 0;
  uint16_t cid_ = 0;
  std::string session_key_;
  bool registered_ = false;
  bool logged_out_ = false;
  std::optional<ChapCredentials> chap_;
  enum class Auth { none_needed, offered, challenged, done } auth_ = Auth::none_needed;
  bool auth_negotiated_ = false;
  uint8_t chap_id_ = 0;
  std::vector<uint8_t> chap_challenge_;
  bool first_response_ = true;
  bool declared_ = false;

  // Full feature phase.
  uint32_t stat_sn_ = 0;                    // send_mutex_
  std::atomic<uint32_t> exp_cmd_sn_{0};     // written by the reading thread only
  OpenedTarget opened_;
  std::unique_ptr<LogicalUnit> lu_;
  std::deque<Task> tasks_;
  uint32_t next_ttt_ = 1;
  DataBuffer data_in_;
  Pdu pdu_;  // the full feature phase's request being handled
  std::vector<util::FileSpan> mapped_;  // a read piece mapped to files (stream_read)
  std::string text_pending_;  // SendTargets text not yet sent (C bit)
  uint32_t text_ttt_ = kReservedTag;
  uint64_t commands_ = 0;
  std::string stop_reason_ = "disconnected";
  // Large READs (see scsi_command); last, so it is gone before what its
  // threads use. Null until the first read it takes.
  std::unique_ptr<util::ConnectionWorkers<ReadJob>> workers_;
};

Connection::~Connection() {
  close_workers();  // they use the LUN until they are joined
  if (opened_.lun0.device) opened_.lun0.device->flush();
  const auto retain = std::chrono::seconds(negotiator_.params().default_time2retain);
  if (registered_ && !logged_out_ && opened_.lun0.device && retain.count() > 0) {
    // Gone without a Logout: the initiator may come back (§6.3.5).
    sessions_.retain(session_key_, id_, tsih_, target_, std::move(opened_), retain);
    return;
  }
  if (registered_) sessions_.release(session_key_, id_);
}  // opened_.lun0 releases itself (block::ReleaseOnce)

// Reading: util::SocketReader (buffered, busy polling as NBD does); before
// it waits for the initiator, the responses it may be waiting for go out.
bool Connection::read_exact(void* buf, size_t n) { return reader_.read_exact(buf, n); }

// Called by the reading thread before it waits for the initiator. Workers
// send everything they append before they let go of the lock, so when
// out_pending_ is false there is nothing of ours to send, and the reader
// does not queue behind a worker's Data-In for the lock just to find that
// out: on 1 MiB sequential reads, 4 in flight, that took the server's CPU
// per request from 380 to 358 us (medians of 4 rounds, same run).
bool Connection::flush_output() {
  if (!out_pending_) return !broken_;
  std::lock_guard lock(send_mutex_);
  return flush_locked();
}

bool Connection::flush_locked() {
  if (out_.empty()) return !broken_;
  out_pending_ = false;
  if (broken_) {
    out_.clear();
    return false;
  }
  size_t sent = 0;
  while (sent < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + sent, out_.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      broken_ = true;
      out_.clear();
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  out_.clear();
  if (out_.capacity() > 2 * kBatchBytes) out_.shrink_to_fit();
  return true;
}

void Connection::append_output(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out_.insert(out_.end(), b, b + n);
  out_pending_ = true;
}

void Connection::queue_pdu(Pdu& pdu, const uint8_t* data, uint32_t length, StatSn sn) {
  std::lock_guard lock(send_mutex_);
  queue_pdu_locked(pdu, data, length, sn);
}

void Connection::queue_pdu_locked(Pdu& pdu, const uint8_t* data, uint32_t length, StatSn sn) {
  fill_sequence_numbers_locked(pdu, sn);
  pdu.bhs[4] = 0;  // we send no AHS
  pdu.set_data_length(length);
  append_output(pdu.bhs, kBhsSize);
  if (header_digest_) {
    uint8_t d[4];
    uint32_t crc = util::crc32c(pdu.bhs, kBhsSize);
    std::memcpy(d, &crc, 4);  // digests go little-endian on the wire (RFC 7143 §13.1)
    append_output(d, 4);
  }
  if (length > 0) {
    append_output(data, length);
    static const uint8_t zeros[4] = {};
    uint32_t pad = padded(length) - length;
    append_output(zeros, pad);
    if (data_digest_) {
      uint32_t crc = util::crc32c(data, length);
      if (pad) crc = util::crc32c(zeros, pad, crc);
      uint8_t d[4];
      std::memcpy(d, &crc, 4);
      append_output(d, 4);
    }
  }
  if (out_.size() >= kBatchBytes) flush_locked();
}

Connection::Read Connection::read_pdu(Pdu& pdu) {
  if (!read_exact(pdu.bhs, kBhsSize)) return Read::closed;
  const uint32_t ahs = pdu.ahs_length();
  if (ahs > kMaxAhs) return Read::broken;
  pdu.ahs.resize(ahs);
  if (ahs && !read_exact(pdu.ahs.data(), ahs)) return Read::closed;
  if (header_digest_) {
    uint32_t got;
    if (!read_exact(&got, 4)) return Read::closed;
    uint32_t crc = util::crc32c(pdu.bhs, kBhsSize);
    if (ahs) crc = util::crc32c(pdu.ahs.data(), ahs, crc);
    if (got != crc) {
      stop_reason_ = "dropped: header digest error";
      return Read::broken;
    }
  }
  const uint32_t length = pdu.data_length();
  const uint32_t limit = std::max(options_.limits.max_recv_data_segment_length, uint32_t{8192});
  if (length > limit) {
    stop_reason_ = "dropped: a data segment of " + std::to_string(length) + " bytes (we accept " +
                   std::to_string(limit) + ")";
    return Read::broken;
  }
  pdu.data.resize(padded(length));
  if (length && !read_exact(pdu.data.data(), pdu.data.size())) return Read::closed;
  if (data_digest_ && length) {
    uint32_t got;
    if (!read_exact(&got, 4)) return Read::closed;
    if (got != util::crc32c(pdu.data.data(), pdu.data.size())) {
      stop_reason_ = "dropped: data digest error";
      // ERL 0 cannot recover the PDU: say why, then end the connection.
      reject(pdu, kRejectDataDigest);
      return Read::broken;
    }
  }
  pdu.data.resize(length);
  return Read::ok;
}

// Every PDU we send has StatSN, ExpCmdSN and MaxCmdSN at bytes 24-35.
void Connection::fill_sequence_numbers_locked(Pdu& pdu, StatSn sn) {
  const uint32_t exp = exp_cmd_sn_;
  pdu.set_u32(24, sn == StatSn::zero ? 0 : sn == StatSn::next ? stat_sn_++ : stat_sn_);
  pdu.set_u32(28, exp);
  pdu.set_u32(32, exp + options_.cmdsn_window - 1);
}

// A receive timeout for the login, none after it; TCP keepalive finds PCs
// that were switched off (their connection would otherwise stay open, and
// with it the session's last connection, for hours).
void set_receive_timeout(int fd, std::chrono::seconds t) {
  timeval tv{static_cast<time_t>(t.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void Connection::run() {
  int one = 1, idle = 60, interval = 10, count = 6;
  ::setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd_, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  set_receive_timeout(fd_, options_.login_timeout);
  if (!login()) {
    flush_output();
    return;
  }
  set_receive_timeout(fd_, std::chrono::seconds(0));
  if (options_.on_established) options_.on_established();
  full_feature();
  close_workers();  // what they hold answers before the connection ends (or is dropped, if it broke)
  flush_output();
  // Tasks still waiting for data were never acknowledged: nothing of them is kept.
  log(stop_reason_ + " (" + std::to_string(commands_) + " commands served)");
}

// ---------------------------------------------------------------- login

bool Connection::login_reject(const Pdu& request, uint16_t status, const std::string& why) {
  Pdu r;
  r.set_opcode(kOpLoginResponse);
  r.bhs[2] = 0x00;  // version max
  r.bhs[3] = 0x00;  // version active
  std::memcpy(r.bhs + 8, request.bhs + 8, 6);  // ISID
  r.set_u32(16, request.itt());
  r.bhs[36] = static_cast<uint8_t>(status >> 8);
  r.bhs[37] = static_cast<uint8_t>(status);
  queue_pdu(r, nullptr, 0, StatSn::keep);
  log("login refused (status 0x" + util::to_hex(std::span<const uint8_t>(r.bhs + 36, 2)) + "): " + why);
  return false;
}

bool Connection::login() {
  std::vector<uint8_t> text;  // keys across C-bit PDUs
  bool first = true;
  Stage stage = kSecurityStage;
  while (true) {
    Pdu pdu;
    errno = 0;
    Read rd = read_pdu(pdu);
    if (rd == Read::closed) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        log("login not done within " + std::to_string(options_.login_timeout.count()) + " s: closed");
      } else if (!first) {
        log("closed during login");
      }
      return false;
    }
    if (rd == Read::broken) {
      log(stop_reason_ + " during login");
      return false;
    }
    if (options_.stopping && options_.stopping->load()) return login_reject(pdu, kLoginServiceUnavailable, "the server is stopping");
    if (pdu.opcode() != kOpLoginRequest) return login_reject(pdu, kLoginInvalidDuringLogin, opcode_name(pdu.opcode()) + " during login");
    const uint8_t flags = pdu.flags();
    const bool transit = flags & kLoginTransit, more = flags & kLoginContinue;
    const auto csg = static_cast<Stage>((flags >> 2) & 3), nsg = static_cast<Stage>(flags & 3);
    if (transit && more) return login_reject(pdu, kLoginInitiatorError, "both T and C bits set");
    if (first) {
      // Version 0 is the only one there is.
      if (pdu.bhs[3] != 0) return login_reject(pdu, kLoginUnsupportedVersion, "version-min " + std::to_string(pdu.bhs[3]));
      std::memcpy(isid_, pdu.bhs + 8, 6);
      tsih_ = load_be16(pdu.bhs + 14);
      cid_ = load_be16(pdu.bhs + 20);
      exp_cmd_sn_ = pdu.u32(24);
      stat_sn_ = pdu.u32(28);
      stage = csg;
      if (csg != kSecurityStage && csg != kOperationalStage) return login_reject(pdu, kLoginInitiatorError, "login starts in stage " + std::to_string(csg));
    } else if (csg != stage) {
      return login_reject(pdu, kLoginInitiatorError, "stage " + std::to_string(csg) + " where " + std::to_string(stage) + " was current");
    }
    if (std::memcmp(isid_, pdu.bhs + 8, 6) != 0) return login_reject(pdu, kLoginInitiatorError, "the ISID changed during login");
    if (transit && (nsg == 2 || nsg <= csg)) return login_reject(pdu, kLoginInitiatorError, "transit to stage " + std::to_string(nsg));

    if (text.size() + pdu.data.size() > kMaxTextBytes) return login_reject(pdu, kLoginInitiatorError, "more than 64 KiB of login keys");
    text.insert(text.end(), pdu.data.begin(), pdu.data.end());
    Pdu r;
    r.set_opcode(kOpLoginResponse);
    std::memcpy(r.bhs + 8, isid_, 6);
    r.set_u32(16, pdu.itt());
    if (more) {
      // The initiator has more keys: acknowledge with an empty response.
      r.bhs[1] = static_cast<uint8_t>(csg << 2);
      queue_pdu(r, nullptr, 0, StatSn::next);
      first = false;
      continue;
    }
    std::vector<KeyValue> keys;
    std::string error = parse_text(text.data(), text.size(), keys);
    text.clear();
    if (!error.empty()) return login_reject(pdu, kLoginInitiatorError, "malformed keys: " + error);
    for (size_t i = 0; i < keys.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (keys[i].key == keys[j].key) return login_reject(pdu, kLoginInitiatorError, "key " + keys[i].key + " sent twice");
      }
    }
    std::vector<uint8_t> answer;
    uint16_t status = kLoginSuccess;
    std::string why;
    if (first) {
      for (const auto& kv : keys) {
        if (kv.key == "InitiatorName") initiator_ = kv.value.substr(0, 223);
        else if (kv.key == "TargetName") target_ = kv.value.substr(0, 223);
        else if (kv.key == "SessionType") {
          if (kv.value == "Discovery") discovery_ = true;
          else if (kv.value != "Normal") return login_reject(pdu, kLoginSessionTypeUnsupported, "SessionType " + kv.value.substr(0, 32));
        }
      }
      if (initiator_.empty()) return login_reject(pdu, kLoginMissingParameter, "no InitiatorName");
      if (!discovery_ && target_.empty()) return login_reject(pdu, kLoginMissingParameter, "no TargetName");
      if (discovery_) target_.clear();
      try {
        chap_ = targets_.authentication(discovery_ ? "" : target_);
      } catch (const TargetError& e) {
        return login_reject(pdu, e.login_status, e.what());
      } catch (const std::exception& e) {
        return login_reject(pdu, kLoginTargetError, e.what());
      }
      auth_ = chap_ ? Auth::offered : Auth::none_needed;
      session_key_ = initiator_ + "," + hex_isid(isid_);
      if (tsih_ != 0 && sessions_.tsih_of(session_key_) != tsih_) {
        return login_reject(pdu, kLoginNoSession, "TSIH " + std::to_string(tsih_) + " names no session of this initiator and ISID");
      }
    }
    for (const auto& kv : keys) {
      const std::string& k = kv.key;
      if (k == "InitiatorName" || k == "TargetName" || k == "SessionType") {
        if (!first) return login_reject(pdu, kLoginInitiatorError, k + " may only be sent in the first login request");
        continue;
      }
      if (k == "AuthMethod" || k.rfind("CHAP_", 0) == 0) continue;  // below
      if (k == "TargetAlias" || k == "TargetAddress" || k == "TargetPortalGroupTag") {
        append_text(answer, k, "Irrelevant");
        continue;
      }
      if (negotiator_.seen(k)) return login_reject(pdu, kLoginInitiatorError, "key " + k + " negotiated twice");
      if (auto a = negotiator_.answer(k, kv.value)) append_text(answer, k, *a);
    }
    if (!security_keys(keys, answer, status, why)) return login_reject(pdu, status, why);
    if (first_response_ && !discovery_) append_text(answer, "TargetPortalGroupTag", "1");
    first_response_ = false;
    first = false;

    bool go = transit;
    if (go && auth_ != Auth::none_needed && auth_ != Auth::done) {
      // CHAP was required and has not been completed: stay, unless the
      // initiator insists on leaving the security stage without it.
      if (csg == kSecurityStage && auth_ != Auth::offered) go = false;
      else if (auth_ == Auth::offered && !auth_negotiated_) return login_reject(pdu, kLoginAuthFailed, "authentication is required and was not offered");
      else go = false;
    }
    if (go && (nsg == kOperationalStage || nsg == kFullFeaturePhase) && !declared_) {
      for (const auto& kv : negotiator_.declarations()) append_text(answer, kv.key, kv.value);
      declared_ = true;
    }
    if (go && nsg == kFullFeaturePhase) {
      if (!enter_full_feature(pdu, status, why)) return login_reject(pdu, status, why);
    }
    r.bhs[1] = static_cast<uint8_t>((go ? kLoginTransit : 0) | (csg << 2) | (go ? nsg : 0));
    util::store_be16(r.bhs + 14, tsih_);
    if (answer.size() > kMaxTextBytes) return login_reject(pdu, kLoginTargetError, "login answer too large");
    queue_pdu(r, answer.data(), static_cast<uint32_t>(answer.size()), StatSn::next);
    if (go) {
      stage = nsg;
      if (nsg == kFullFeaturePhase) {
        // Digests apply from the first PDU after the final login response.
        flush_output();
        header_digest_ = negotiator_.params().header_digest;
        data_digest_ = negotiator_.params().data_digest;
        return !broken_;
      }
    }
  }
}

// AuthMethod and the CHAP exchange (RFC 7143 §12.1.3). Returns false with
// `status` and `why` when the login must be refused.
bool Connection::security_keys(const std::vector<KeyValue>& keys, std::vector<uint8_t>& answer, uint16_t& status,
                               std::string& why) {
  auto find = [&](const std::string& k) -> const std::string* {
    for (const auto& kv : keys)
      if (kv.key == k) return &kv.value;
    return nullptr;
  };
  if (const std::string* methods = find("AuthMethod")) {
    auth_negotiated_ = true;
    bool offers_chap = false, offers_none = false;
    size_t start = 0;
    while (start <= methods->size()) {
      size_t comma = methods->find(',', start);
      std::string m = methods->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      offers_chap |= m == "CHAP";
      offers_none |= m == "None";
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (chap_) {
      if (!offers_chap) {
        status = kLoginAuthFailed;
        why = "CHAP is required and the initiator offers only " + methods->substr(0, 64);
        return false;
      }
      append_text(answer, "AuthMethod", "CHAP");
    } else if (offers_none) {
      append_text(answer, "AuthMethod", "None");
    } else {
      status = kLoginAuthFailed;
      why = "the initiator offers only " + methods->substr(0, 64) + " and no CHAP secret is set for this target";
      return false;
    }
  }
  if (const std::string* algorithms = find("CHAP_A")) {
    if (!chap_ || auth_ != Auth::offered) {
      status = kLoginInitiatorError;
      why = "CHAP_A out of turn";
      return false;
    }
    bool md5 = false;
    size_t start = 0;
    while (start <= algorithms->size()) {
      size_t comma = algorithms->find(',', start);
      md5 |= algorithms->substr(start, comma == std::string::npos ? std::string::npos : comma - start) == "5";
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (!md5) {
      status = kLoginAuthFailed;
      why = "CHAP_A offers no MD5 (5)";
      return false;
    }
    std::random_device rd;
    chap_id_ = static_cast<uint8_t>(rd());
    chap_challenge_.resize(16);
    for (auto& b : chap_challenge_) b = static_cast<uint8_t>(rd());
    append_text(answer, "CHAP_A", "5");
    append_text(answer, "CHAP_I", std::to_string(chap_id_));
    append_text(answer, "CHAP_C", encode_hex(chap_challenge_));
    auth_ = Auth::challenged;
    return true;
  }
  const std::string* name = find("CHAP_N");
  const std::string* response = find("CHAP_R");
  if (name || response) {
    if (!chap_ || auth_ != Auth::challenged || !name || !response) {
      status = kLoginInitiatorError;
      why = "CHAP_N/CHAP_R out of turn";
      return false;
    }
    auto r = decode_binary(*response);
    if (!r || *name != chap_->user || !equal_secret(*r, chap_response(chap_id_, chap_->secret, chap_challenge_))) {
      status = kLoginAuthFailed;
      why = "CHAP: wrong user name or secret (user '" + name->substr(0, 64) + "')";
      return false;
    }
    const std::string* id = find("CHAP_I");
    const std::string* challenge = find("CHAP_C");
    if (id || challenge) {
      // Mutual CHAP: the initiator challenges us in turn.
      auto i = id ? parse_number(*id, 0, 255) : std::nullopt;
      auto c = challenge ? decode_binary(*challenge) : std::nullopt;
      if (!i || !c) {
        status = kLoginInitiatorError;
        why = "mutual CHAP: CHAP_I and CHAP_C must both be valid";
        return false;
      }
      if (!chap_->mutual()) {
        status = kLoginAuthFailed;
        why = "the initiator asks for mutual CHAP and no target secret is set for this target";
        return false;
      }
      if (*c == chap_challenge_) {
        status = kLoginAuthFailed;
        why = "mutual CHAP: the initiator sent back our own challenge";
        return false;
      }
      append_text(answer, "CHAP_N", chap_->target_user);
      append_text(answer, "CHAP_R", encode_hex(chap_response(static_cast<uint8_t>(*i), chap_->target_secret, *c)));
    }
    auth_ = Auth::done;
  }
  return true;
}

bool Connection::enter_full_feature(const Pdu& request, uint16_t& status, std::string& why) {
  (void)request;
  if (auth_ != Auth::none_needed && auth_ != Auth::done) {
    status = kLoginAuthFailed;
    why = "authentication is required and was not completed";
    return false;
  }
  // Reinstatement: a connection still holding this session goes first, and
  // what it (or an earlier one that vanished) had open is taken over.
  const bool reinstating = sessions_.tsih_of(session_key_) != 0;
  if (tsih_ == 0) tsih_ = sessions_.new_tsih();
  const int fd = fd_;
  if (!sessions_.take(session_key_, id_, tsih_, [fd] { ::shutdown(fd, SHUT_RDWR); })) {
    status = kLoginServiceUnavailable;
    why = "the session's previous connection did not end in time";
    return false;
  }
  if (!discovery_) {
    if (auto kept = sessions_.reclaim(session_key_, target_)) {
      opened_ = std::move(*kept);
    } else {
      try {
        opened_ = targets_.open(target_, initiator_);
      } catch (const TargetError& e) {
        sessions_.release(session_key_, id_);
        status = e.login_status;
        why = e.what();
        return false;
      } catch (const std::exception& e) {
        sessions_.release(session_key_, id_);
        status = kLoginTargetError;
        why = e.what();
        return false;
      }
    }
    lu_ = std::make_unique<LogicalUnit>(opened_.lun0.device, opened_.identity);
  }
  registered_ = true;
  const Params& p = negotiator_.params();
  log(std::string(reinstating ? "session reinstated" : "logged in") + (discovery_ ? " (discovery)" : ", " + opened_.lun0.description) +
      (chap_ ? ", CHAP" + std::string(chap_->mutual() ? " (mutual)" : "") : "") + ", ISID " + hex_isid(isid_) +
      ", TSIH " + std::to_string(tsih_) + (p.header_digest ? ", header digest" : "") +
      (p.data_digest ? ", data digest" : ""));
  return true;
}

// ------------------------------------------------------- full feature phase

void Connection::full_feature() {
  while (!broken_) {
    if (options_.stopping && options_.stopping->load()) {
      stop_reason_ = "closing: the server is stopping";
      return;
    }
    // One PDU reused: its vectors keep their capacity, so immediate data
    // costs no allocation per command.
    Read rd = read_pdu(pdu_);
    Pdu& pdu = pdu_;
    if (rd == Read::closed) {
      if (options_.stopping && options_.stopping->load()) stop_reason_ = "closing: the server is stopping";
      return;
    }
    if (rd == Read::broken) {
      if (stop_reason_.rfind("dropped", 0) != 0) stop_reason_ = "dropped: malformed PDU";
      reject(pdu, kRejectProtocolError);
      return;
    }
    if (!handle(pdu)) return;
  }
  if (broken_ && stop_reason_ == "disconnected") stop_reason_ = "initiator went away mid-response";
}

// CmdSN (RFC 7143 §4.2.2.1): a non-immediate command outside
// [ExpCmdSN, MaxCmdSN] is silently ignored.
bool Connection::accept_cmdsn(const Pdu& pdu) {
  const uint32_t cmdsn = pdu.u32(24);
  if (pdu.immediate()) return true;
  const uint32_t max = exp_cmd_sn_ + options_.cmdsn_window - 1;
  if (sn_lt(cmdsn, exp_cmd_sn_) || sn_lt(max, cmdsn)) {
    log("ignored " + opcode_name(pdu.opcode()) + " with CmdSN " + std::to_string(cmdsn) + " outside [" +
        std::to_string(exp_cmd_sn_) + ", " + std::to_string(max) + "]");
    return false;
  }
  if (sn_le(exp_cmd_sn_, cmdsn)) exp_cmd_sn_ = cmdsn + 1;
  return true;
}

bool Connection::handle(Pdu& pdu) {
  switch (pdu.opcode()) {
    case kOpNopOut:
      if (pdu.itt() != kReservedTag && !accept_cmdsn(pdu)) return true;
      return nop_out(pdu);
    case kOpScsiCommand:
      if (!accept_cmdsn(pdu)) return true;
      ++commands_;
      return scsi_command(pdu);
    case kOpDataOut:
      return data_out(pdu);
    case kOpTaskRequest:
      if (!accept_cmdsn(pdu)) return true;
      return task_management(pdu);
    case kOpTextRequest:
      if (!accept_cmdsn(pdu)) return true;
      return text(pdu);
    case kOpLogoutRequest:
      if (!accept_cmdsn(pdu)) return true;
      return logout(pdu);
    case kOpLoginRequest:
      stop_reason_ = "dropped: Login Request in the full feature phase";
      reject(pdu, kRejectProtocolError);
      return false;
    case kOpSnack:
      return reject(pdu, kRejectSnack);  // ErrorRecoveryLevel 0 has no SNACK
    default:
      return reject(pdu, kRejectNotSupported);
  }
}

bool Connection::reject(const Pdu& pdu, uint8_t reason) {
  Pdu r;
  r.set_opcode(kOpReject);
  r.bhs[1] = kFinalBit;
  r.bhs[2] = reason;
  r.set_u32(16, kReservedTag);
  queue_pdu(r, pdu.bhs, kBhsSize, StatSn::keep);
  return true;
}

bool Connection::nop_out(const Pdu& pdu) {
  if (pdu.itt() == kReservedTag) return true;  // a ping that wants no answer, or an answer to ours
  Pdu r;
  r.set_opcode(kOpNopIn);
  r.bhs[1] = kFinalBit;
  std::memcpy(r.bhs + 8, pdu.bhs + 8, 8);  // LUN
  r.set_u32(16, pdu.itt());
  r.set_u32(20, kReservedTag);
  const uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(pdu.data.size()), negotiator_.params().initiator_max_recv);
  queue_pdu(r, pdu.data.data(), n, StatSn::next);
  return true;
}

void Connection::respond(uint32_t itt, const Status& status, uint8_t residual_flags, uint32_t residual) {
  std::lock_guard lock(send_mutex_);
  respond_locked(itt, status, residual_flags, residual);
}

void Connection::respond_locked(uint32_t itt, const Status& status, uint8_t residual_flags, uint32_t residual) {
  Pdu r;
  r.set_opcode(kOpScsiResponse);
  r.bhs[1] = static_cast<uint8_t>(kFinalBit | residual_flags);
  r.bhs[2] = 0x00;  // command completed at target
  r.bhs[3] = status.status;
  r.set_u32(16, itt);
  r.set_u32(44, residual);
  std::vector<uint8_t> sense;
  if (!status.sense.empty()) {
    sense.resize(2);
    store_be16(sense.data(), static_cast<uint16_t>(status.sense.size()));
    sense.insert(sense.end(), status.sense.begin(), status.sense.end());
  }
  queue_pdu_locked(r, sense.data(), static_cast<uint32_t>(sense.size()), StatSn::next);
}

bool Connection::send_data_in_locked(uint32_t itt, uint64_t lun, const uint8_t* data, uint32_t length,
                                     uint32_t buffer_offset, uint32_t& datasn, bool with_status, uint8_t status,
                                     uint8_t residual_flags, uint32_t residual, std::span<const util::FileSpan> mapped) {
  const Params& p = negotiator_.params();
  const uint32_t segment = std::max<uint32_t>(512, p.initiator_max_recv);
  const uint32_t burst = std::max<uint32_t>(segment, p.max_burst_length);
  // Small replies join the batch; large ones go out from the buffer itself,
  // with their headers, in one sendmsg per group of PDUs.
  const bool direct = !mapped.empty() || (length > 64 * 1024 && !data_digest_);
  if (direct && !flush_locked()) return false;
  std::vector<std::array<uint8_t, kBhsSize + 4>> headers;
  for (uint32_t offset = 0; offset < length;) {
    const uint32_t n = std::min({segment, length - offset, burst - (buffer_offset + offset) % burst});
    const bool last = offset + n >= length;
    const bool sequence_end = (last && with_status) || (buffer_offset + offset + n) % burst == 0;
    const bool carries_status = last && with_status;
    Pdu r;
    r.set_opcode(kOpDataIn);
    r.bhs[1] = static_cast<uint8_t>((sequence_end ? kFinalBit : 0) | (carries_status ? kDataInStatus | residual_flags : 0));
    r.bhs[3] = carries_status ? status : 0;
    r.set_u64(8, lun);
    r.set_u32(16, itt);
    r.set_u32(20, kReservedTag);
    const StatSn sn = carries_status ? StatSn::next : StatSn::zero;  // StatSN only with status
    r.set_u32(36, datasn++);
    r.set_u32(40, buffer_offset + offset);
    r.set_u32(44, carries_status ? residual : 0);
    if (!direct) {
      queue_pdu_locked(r, data + offset, n, sn);
    } else {
      fill_sequence_numbers_locked(r, sn);
      r.set_data_length(n);
      auto& h = headers.emplace_back();
      std::memcpy(h.data(), r.bhs, kBhsSize);
      if (header_digest_) {
        uint32_t crc = util::crc32c(r.bhs, kBhsSize);
        std::memcpy(h.data() + kBhsSize, &crc, 4);
      }
    }
    offset += n;
  }
  if (!direct) return !broken_;
  static const uint8_t zeros[4] = {};
  const size_t hlen = kBhsSize + (header_digest_ ? 4 : 0);
  if (!mapped.empty()) {
    // Each PDU: its header, then its share of the files, then padding.
    std::vector<util::FileSpan> share;
    uint32_t at = 0;
    for (const auto& h : headers) {
      const uint32_t n = util::load_be32(h.data() + 4) & 0xffffff;
      share.clear();
      util::slice_spans(mapped, at, n, share);
      util::append_span(share, {-1, 0, padded(n) - n});
      if (!util::send_spans(fd_, h.data(), hlen, share)) {
        if (errno != EPIPE && errno != ECONNRESET) log(std::string("sending Data-In failed: ") + std::strerror(errno));
        broken_ = true;
        return false;
      }
      at += n;
    }
    return true;
  }
  std::vector<iovec> iov;
  uint32_t offset = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    const uint32_t n = util::load_be32(headers[i].data() + 4) & 0xffffff;
    iov.push_back({headers[i].data(), hlen});
    iov.push_back({const_cast<uint8_t*>(data + offset), n});
    if (padded(n) != n) iov.push_back({const_cast<uint8_t*>(zeros), padded(n) - n});
    offset += n;
  }
  size_t first = 0;
  while (first < iov.size()) {
    msghdr msg{};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = std::min<size_t>(iov.size() - first, 512);
    ssize_t sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) {
      broken_ = true;
      return false;
    }
    auto left = static_cast<size_t>(sent);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < iov.size() && left) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

// Residuals (RFC 7143 §11.4.5): what the command would move (`wanted`)
// against what the initiator expected (EDTL).
void residual_of(uint32_t wanted, uint32_t edtl, uint8_t& flags, uint32_t& residual) {
  flags = 0;
  residual = 0;
  if (wanted > edtl) {
    flags = kResidualOverflow;
    residual = wanted - edtl;
  } else if (wanted < edtl) {
    flags = kResidualUnderflow;
    residual = edtl - wanted;
  }
}

// A READ, streamed: the initiator gets min(EDTL, the blocks asked for)
// bytes in pieces of kReadPiece, each tried from the page cache first.
// Runs on the reading thread (small reads) or a worker (see scsi_command).
// Each piece's data is mapped or read before the send lock is taken, and
// the lock is then held to the status: the Data-In sequence of one command
// is not interleaved with other PDUs on the wire (a worker's reply stays
// whole, as NBD's does), and the first piece, which is all of most reads,
// waits on the disk without holding up anyone else's replies.
bool Connection::stream_read(const ReadJob& job, ReadScratch scratch) {
  const LogicalUnit::BlockIo& io = job.io;
  const uint64_t total = job.total();
  const uint32_t sending = job.sending();
  uint8_t flags;
  uint32_t residual;
  residual_of(total > 0xffffffff ? 0xffffffff : static_cast<uint32_t>(total), job.edtl, flags, residual);
  std::unique_lock lock(send_mutex_, std::defer_lock);
  if (sending == 0) {
    lock.lock();
    respond_locked(job.itt, Status{}, flags, residual);
    return scratch.worker ? flush_locked() : !broken_;
  }
  uint32_t datasn = 0;
  for (uint32_t offset = 0; offset < sending && !broken_;) {
    const uint32_t n = std::min(kReadPiece, sending - offset);
    const uint32_t length = job.piece_length(offset, n);
    const bool last = offset + n == sending;
    if (n >= kSendFileFrom && !data_digest_) {
      // Large, cached and mapped to version files: sent without a copy
      // (as NBD does; util/file_send.h). A digest needs the bytes in hand.
      scratch.mapped->clear();
      if (lu_->device().map_read(io.lba * kBlockSize + offset, n, *scratch.mapped) == 0) {
        if (!lock.owns_lock()) lock.lock();
        send_data_in_locked(job.itt, job.lun_field, nullptr, n, offset, datasn, last, kStatusGood, flags, residual,
                            *scratch.mapped);
        offset += n;
        continue;
      }
    }
    uint8_t* buf;
    Status s;
    if (offset == 0 && scratch.have_first) {
      buf = scratch.buffer->data();
    } else {
      buf = scratch.buffer->prepare(length);
      s = lu_->read_at(io.lba * kBlockSize + offset, length, buf);
    }
    if (!lock.owns_lock()) lock.lock();
    if (!s.good()) {
      respond_locked(job.itt, s, kResidualUnderflow, job.edtl);
      break;
    }
    send_data_in_locked(job.itt, job.lun_field, buf, n, offset, datasn, last, kStatusGood, flags, residual);
    offset += n;
  }
  // A worker's reply goes out now, not with the reading thread's next batch
  // (which may wait for the initiator, which waits for this).
  return scratch.worker ? flush_locked() : !broken_;
}

bool Connection::hand_to_worker(ReadJob&& job) {
  if (!workers_) {
    util::ConnectionWorkers<ReadJob>::Limits limits;
    limits.threads = options_.read_workers;
    workers_ = std::make_unique<util::ConnectionWorkers<ReadJob>>(
        limits, [this](ReadJob& j) { return run_on_worker(j); },
        [this] {
          // The reading thread's recv ends at once; the initiator is gone.
          broken_ = true;
          ::shutdown(fd_, SHUT_RDWR);
        });
  }
  const uint64_t bytes = held_bytes(job.sending());
  return workers_->push(std::move(job), bytes, [this] { return flush_output(); });
}

bool Connection::run_on_worker(ReadJob& job) {
  DataBuffer buffer;
  std::vector<util::FileSpan> mapped;
  return stream_read(job, {&buffer, &mapped, true});
}

util::ConnectionWorkers<Connection::ReadJob>::Cancelled Connection::cancel_reads(
    const std::function<bool(const ReadJob&)>& select) {
  if (!workers_) return {};
  return workers_->cancel(select);
}

void Connection::drain_reads() {
  if (workers_) workers_->drain();
}

void Connection::close_workers() {
  if (workers_) workers_->close();
}

// Runs a command whose data is all there and answers it.
void Connection::run_task(const uint8_t* cdb, int64_t lun, uint32_t itt, uint64_t lun_field, uint32_t edtl,
                          bool reading, std::span<const uint8_t> data) {
  uint32_t produced = 0;
  const uint32_t max_in = reading ? edtl : 0;
  Status s = lu_->execute(cdb, lun, data, data_in_, max_in, produced);
  if (options_.log_commands) log("command 0x" + util::to_hex(std::span<const uint8_t>(cdb, 1)) + " status " + std::to_string(s.status));
  if (!s.good()) {
    respond(itt, s, edtl ? kResidualUnderflow : 0, edtl);
    return;
  }
  uint8_t flags;
  uint32_t residual;
  if (!reading) {
    // Data to return and no room for it is an overflow; data the initiator
    // sent beyond what the command takes, an underflow.
    if (produced > 0) residual_of(produced, 0, flags, residual);
    else residual_of(static_cast<uint32_t>(data.size()), edtl, flags, residual);
    respond(itt, s, flags, residual);
    return;
  }
  residual_of(produced, edtl, flags, residual);
  const uint32_t sending = std::min<uint32_t>({produced, edtl, static_cast<uint32_t>(data_in_.size())});
  if (sending == 0) {
    respond(itt, s, flags, residual);
  } else {
    uint32_t datasn = 0;
    std::lock_guard lock(send_mutex_);
    send_data_in_locked(itt, lun_field, data_in_.data(), sending, 0, datasn, true, s.status, flags, residual);
  }
  data_in_.release_if_larger_than(kKeptBuffer);
}

bool Connection::scsi_command(Pdu& pdu) {
  const uint32_t itt = pdu.itt();
  if (!lu_) {
    stop_reason_ = "dropped: SCSI command in a discovery session";
    reject(pdu, kRejectProtocolError);
    return false;
  }
  const bool reading = pdu.flags() & kCmdRead, writing = pdu.flags() & kCmdWrite;
  const uint32_t edtl = pdu.u32(20);
  const int64_t lun = decode_lun(pdu.lun());
  const uint8_t* cdb = pdu.bhs + 32;
  const auto immediate = static_cast<uint32_t>(pdu.data.size());
  const Params& p = negotiator_.params();
  if (immediate > 0 && (!writing || immediate > edtl || !p.immediate_data || immediate > p.first_burst_length)) {
    // Data the initiator was not allowed to send this way.
    return reject(pdu, kRejectProtocolError);
  }
  LogicalUnit::Prepared prepared = lu_->prepare(cdb, lun);
  if (!prepared.early.good()) {
    respond(itt, prepared.early, edtl ? kResidualUnderflow : 0, edtl);
    return true;
  }
  const auto io = lu_->block_io(cdb);
  if (io && !io->write) {
    ReadJob job{*io, itt, pdu.lun(), reading ? edtl : 0};
    // Large reads go to the workers, cached or not, and this thread goes
    // on reading commands (util/connection_workers.h): a large read that
    // waits for the disk does not hold up the commands behind it. For
    // cached data the hand-off makes no measurable difference
    // (docs/benchmarks.md: 0.91-1.00x, with a client that reads into its
    // own buffers). Smaller ones are answered here, into the batch many
    // responses share one send in, when their data is in the page cache;
    // one that must wait for the disk goes to a worker too, so it does not
    // hold up the cached ones behind it (as NBD does: nbd/connection.cc
    // answer_inline).
    const uint32_t sending = job.sending();
    const bool workers = options_.read_workers > 0;
    if (sending >= kToWorkersFrom && workers) {
      if (!hand_to_worker(std::move(job))) stop_reason_ = "initiator went away mid-response";
      return !broken_;
    }
    bool have_first = false;
    if (sending > 0 && workers) {
      // The first piece stream_read would read (sending < kReadPiece here).
      const uint32_t length = job.piece_length(0, sending);
      if (lu_->device().try_read(io->lba * kBlockSize, length, data_in_.prepare(length)) != 0) {
        // Not cached (or failing: the worker's read reports the error).
        if (!hand_to_worker(std::move(job))) stop_reason_ = "initiator went away mid-response";
        return !broken_;
      }
      have_first = true;
    }
    stream_read(job, {&data_in_, &mapped_, false, have_first});
    data_in_.release_if_larger_than(kKeptBuffer);
    return true;
  }
  Task t;
  t.itt = itt;
  t.lun = lun;
  t.lun_field = pdu.lun();
  std::memcpy(t.cdb, cdb, 16);
  t.edtl = edtl;
  if (io) {
    // A WRITE takes what the initiator sends (EDTL) and writes as much of
    // it as the CDB asks for, burst by burst as it arrives.
    t.streamed = true;
    t.io = *io;
    t.total = writing ? edtl : 0;
    t.write_limit = std::min<uint64_t>(t.total, uint64_t{io->count} * kBlockSize) / kBlockSize * kBlockSize;
  } else {
    if (prepared.data_out != (writing ? edtl : 0)) {
      // The CDB and the iSCSI header disagree on how much data moves for a
      // parameter list: take none of it and say by how much they differ.
      const uint32_t have = writing ? edtl : 0;
      const bool over = prepared.data_out > have;
      respond(itt, lu_->check(kIllegalRequest, kInvalidFieldInCdb), over ? kResidualOverflow : kResidualUnderflow,
              over ? prepared.data_out - have : have - prepared.data_out);
      return true;
    }
    t.total = prepared.data_out;
  }
  if (!t.streamed && (t.total == 0 || immediate == t.total)) {
    run_task(cdb, lun, itt, pdu.lun(), edtl, reading, std::span<const uint8_t>(pdu.data.data(), immediate));
    return true;
  }
  if (t.streamed) {
    write_burst(t, pdu.data.data(), 0, immediate);
    t.received = immediate;
    if (t.received == t.total) {
      finish_write(t);
      return true;
    }
  } else {
    t.buffer = std::make_unique_for_overwrite<uint8_t[]>(t.total);
    if (immediate) std::memcpy(t.buffer.get(), pdu.data.data(), immediate);
    t.received = immediate;
  }
  tasks_.push_back(std::move(t));
  if (tasks_.size() == 1) send_r2t(tasks_.front());
  return true;
}

// The part of [start, start+length) of a streamed write that the CDB covers
// goes to the disk now; the first failure is kept for the status.
void Connection::write_burst(Task& t, const uint8_t* data, uint32_t start, uint32_t length) {
  if (!t.error.good() || start >= t.write_limit) return;
  const auto n = static_cast<uint32_t>(std::min<uint64_t>(length, t.write_limit - start));
  Status s = lu_->write_at(t.io.lba * kBlockSize + start, std::span<const uint8_t>(data, n), t.io.fua);
  if (!s.good()) t.error = s;
}

void Connection::finish_write(Task& t) {
  if (!t.error.good()) {
    respond(t.itt, t.error, t.edtl ? kResidualUnderflow : 0, t.edtl);
    return;
  }
  const uint64_t wanted = uint64_t{t.io.count} * kBlockSize;
  uint8_t flags;
  uint32_t residual;
  residual_of(wanted > 0xffffffff ? 0xffffffff : static_cast<uint32_t>(wanted), t.edtl, flags, residual);
  respond(t.itt, Status{}, flags, residual);
}

void Connection::send_r2t(Task& task) {
  const uint32_t length = std::min(task.total - task.received, negotiator_.params().max_burst_length);
  task.ttt = next_ttt_++;
  if (next_ttt_ == kReservedTag) next_ttt_ = 1;
  task.burst_start = task.received;
  task.burst_end = task.received + length;
  task.next_datasn = 0;
  task.r2t_outstanding = true;
  if (task.streamed && task.buffer_size < length) {
    task.buffer = std::make_unique_for_overwrite<uint8_t[]>(length);
    task.buffer_size = length;
  }
  Pdu r;
  r.set_opcode(kOpR2t);
  r.bhs[1] = kFinalBit;
  r.set_u64(8, task.lun_field);
  r.set_u32(16, task.itt);
  r.set_u32(20, task.ttt);
  r.set_u32(36, task.r2tsn++);
  r.set_u32(40, task.received);
  r.set_u32(44, length);
  queue_pdu(r, nullptr, 0, StatSn::keep);
}

void Connection::start_next_task() {
  if (!tasks_.empty() && !tasks_.front().r2t_outstanding) send_r2t(tasks_.front());
}

bool Connection::data_out(Pdu& pdu) {
  const uint32_t itt = pdu.itt(), ttt = pdu.u32(20);
  if (tasks_.empty() || tasks_.front().itt != itt || tasks_.front().ttt != ttt || !tasks_.front().r2t_outstanding) {
    // No such task (never was, or aborted): say so; the PDU is dropped.
    auto known = std::find_if(tasks_.begin(), tasks_.end(), [&](const Task& t) { return t.itt == itt; });
    if (known == tasks_.end()) return reject(pdu, kRejectInvalidField);
    stop_reason_ = "dropped: Data-Out that no R2T asked for";
    reject(pdu, kRejectProtocolError);
    return false;
  }
  Task& t = tasks_.front();
  const uint32_t datasn = pdu.u32(36), offset = pdu.u32(40);
  const auto n = static_cast<uint32_t>(pdu.data.size());
  if (datasn != t.next_datasn || offset != t.received || n > t.burst_end - t.received) {
    // ErrorRecoveryLevel 0 cannot ask for the PDU again: the task ends with
    // DATA PHASE ERROR (what a streamed write wrote so far stays: a failed
    // WRITE leaves its range undefined), and any more of its Data-Out is
    // rejected as belonging to no task. The connection goes on.
    log("Data-Out out of sequence (DataSN " + std::to_string(datasn) + ", offset " + std::to_string(offset) + ", " +
        std::to_string(n) + " bytes; expected DataSN " + std::to_string(t.next_datasn) + " at offset " +
        std::to_string(t.received) + "): task ended");
    reject(pdu, kRejectProtocolError);
    respond(t.itt, lu_->check(kAbortedCommand, kDataPhaseError), t.edtl ? kResidualUnderflow : 0, t.edtl);
    tasks_.pop_front();
    start_next_task();
    return true;
  }
  const uint32_t at = t.streamed ? t.received - t.burst_start : t.received;
  if (n) std::memcpy(t.buffer.get() + at, pdu.data.data(), n);
  t.received += n;
  ++t.next_datasn;
  if (!pdu.final()) return true;
  if (t.received != t.burst_end) {
    log("Data-Out sequence ended short of what the R2T asked for: task ended");
    reject(pdu, kRejectProtocolError);
    respond(t.itt, lu_->check(kAbortedCommand, kDataPhaseError), t.edtl ? kResidualUnderflow : 0, t.edtl);
    tasks_.pop_front();
    start_next_task();
    return true;
  }
  t.r2t_outstanding = false;
  if (t.streamed) write_burst(t, t.buffer.get(), t.burst_start, t.burst_end - t.burst_start);
  if (t.received < t.total) {
    send_r2t(t);
    return true;
  }
  Task done = std::move(tasks_.front());
  tasks_.pop_front();
  if (done.streamed) {
    finish_write(done);
  } else {
    run_task(done.cdb, done.lun, done.itt, done.lun_field, done.edtl, false,
             std::span<const uint8_t>(done.buffer.get(), done.total));
  }
  start_next_task();
  return true;
}

bool Connection::task_management(const Pdu& pdu) {
  const uint8_t function = pdu.flags() & 0x7f;
  const int64_t lun = decode_lun(pdu.lun());
  uint8_t response = kTmfComplete;
  switch (function) {
    case kTmfAbortTask: {
      const uint32_t ref = pdu.u32(20);
      auto it = std::find_if(tasks_.begin(), tasks_.end(), [&](const Task& t) { return t.itt == ref; });
      if (it == tasks_.end()) {
        // A READ on a worker: one still queued never runs and gets no
        // response (§11.5.1); one running is waited for, so its response
        // precedes ours. Otherwise it is done already: its response went out.
        auto c = cancel_reads([ref](const ReadJob& j) { return j.itt == ref; });
        response = c.dropped + c.waited > 0 ? kTmfComplete : kTmfNoTask;
      } else {
        bool was_head = it == tasks_.begin();
        tasks_.erase(it);
        if (was_head) start_next_task();
      }
      break;
    }
    case kTmfAbortTaskSet:
    case kTmfClearTaskSet:
    case kTmfLunReset:
    case kTmfTargetWarmReset:
    case kTmfTargetColdReset:
      if (function != kTmfTargetWarmReset && function != kTmfTargetColdReset && lun != 0) {
        response = kTmfNoLun;
        break;
      }
      tasks_.clear();
      cancel_reads([](const ReadJob&) { return true; });  // as for ABORT TASK, all of them
      if (function == kTmfLunReset || function == kTmfTargetWarmReset || function == kTmfTargetColdReset) {
        if (lu_) lu_->reset();
      }
      break;
    case kTmfTaskReassign:
      response = 4;  // task allegiance reassignment not supported (ERL 0)
      break;
    default:
      response = kTmfNotSupported;
  }
  Pdu r;
  r.set_opcode(kOpTaskResponse);
  r.bhs[1] = kFinalBit;
  r.bhs[2] = response;
  r.set_u32(16, pdu.itt());
  queue_pdu(r, nullptr, 0, StatSn::next);
  log("task management function " + std::to_string(function) + ": response " + std::to_string(response));
  if (function == kTmfTargetColdReset && response == kTmfComplete) {
    stop_reason_ = "closed by TARGET COLD RESET";
    logged_out_ = true;  // a reset: nothing is kept
    return false;
  }
  return true;
}

std::string Connection::send_targets(const std::string& which) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len);
  auto [host, port] = util::address_of(local);
  const std::string address = host + ":" + std::to_string(port) + ",1";
  std::vector<uint8_t> out;
  std::vector<std::string> names;
  if (which == "All" && discovery_) {
    names = targets_.list();
  } else if (which.empty() || which == target_ || which == "All") {
    if (!target_.empty()) names.push_back(target_);
  } else {
    for (const auto& n : targets_.list())
      if (n == which) names.push_back(n);
  }
  for (const auto& n : names) {
    append_text(out, "TargetName", n);
    append_text(out, "TargetAddress", address);
  }
  return std::string(out.begin(), out.end());
}

bool Connection::text(const Pdu& pdu) {
  const uint32_t ttt = pdu.u32(20);
  std::string body;
  if (ttt != kReservedTag && ttt == text_ttt_) {
    body = std::move(text_pending_);  // the initiator asks for the rest
  } else {
    if (pdu.flags() & kTextContinue) return reject(pdu, kRejectNotSupported);  // multi-PDU text requests: none we need
    std::vector<KeyValue> keys;
    std::string error = parse_text(pdu.data.data(), pdu.data.size(), keys);
    if (!error.empty()) return reject(pdu, kRejectProtocolError);
    std::vector<uint8_t> answer;
    for (const auto& kv : keys) {
      if (kv.key == "SendTargets") {
        std::string t = send_targets(kv.value);
        answer.insert(answer.end(), t.begin(), t.end());
      } else {
        append_text(answer, kv.key, "NotUnderstood");
      }
    }
    body.assign(answer.begin(), answer.end());
  }
  const uint32_t limit = std::max<uint32_t>(512, negotiator_.params().initiator_max_recv);
  Pdu r;
  r.set_opcode(kOpTextResponse);
  r.set_u32(16, pdu.itt());
  if (body.size() > limit) {
    // Split at a key boundary; the initiator asks for the rest with our TTT.
    size_t cut = body.rfind('\0', limit - 1);
    cut = cut == std::string::npos ? limit : cut + 1;
    text_pending_ = body.substr(cut);
    body.resize(cut);
    text_ttt_ = next_ttt_++;
    r.bhs[1] = kTextContinue;
    r.set_u32(20, text_ttt_);
  } else {
    text_pending_.clear();
    text_ttt_ = kReservedTag;
    r.bhs[1] = kFinalBit;
    r.set_u32(20, kReservedTag);
  }
  queue_pdu(r, reinterpret_cast<const uint8_t*>(body.data()), static_cast<uint32_t>(body.size()), StatSn::next);
  return true;
}

bool Connection::logout(const Pdu& pdu) {
  const uint8_t reason = pdu.flags() & 0x7f;
  // The reads on workers finish first: their responses precede the Logout
  // Response, after which the initiator expects nothing more (§11.14).
  drain_reads();
  Pdu r;
  r.set_opcode(kOpLogoutResponse);
  r.bhs[1] = kFinalBit;
  r.bhs[2] = reason == 2 ? 2 : 0;  // recovery is not supported at ERL 0; closing is
  r.set_u32(16, pdu.itt());
  store_be16(r.bhs + 40, 0);  // Time2Wait
  store_be16(r.bhs + 42, 0);  // Time2Retain
  queue_pdu(r, nullptr, 0, StatSn::next);
  stop_reason_ = "logged out";
  logged_out_ = true;
  return false;
}

}  // namespace

void serve_connection(int fd, Targets& targets, SessionTable& sessions, const std::string& peer,
                      const ConnectionOptions& options) {
  try {
    Connection c(fd, targets, sessions, peer, options);
    c.run();
  } catch (const std::exception& e) {
    util::log_line("iscsi " + peer + ": connection failed: " + e.what());
  }
}

}  // namespace bootfleet::iscsi
