// Transfers, in the words of RFC 1350 and RFC 7440.
//
// A transfer numbers its blocks with a 64-bit index (block 0 is the OACK,
// when there is one) and puts only the low 16 bits on the wire, so block
// numbers wrap from 65535 to 0 on files larger than 65535 blocks (32 MiB at
// the default 512 bytes), as tftp-hpa, iPXE and the firmware clients expect.
// An ACK's 16-bit number is mapped back to the one index in
// [acked, sent] it can mean; windows are at most 65535 blocks, so that
// index is unique.
//
// Sending is driven by two events only:
//   - an ACK that acknowledges something new: send the next window, which
//     starts after the acknowledged block (RFC 7440: a receiver that missed
//     a block acknowledges the last one it got in order, and the window
//     restarts there);
//   - a timeout without progress: resend the current window (or the OACK),
//     at most max_retries times in a row, then give up.
// A duplicate ACK (one for a block already acknowledged) sends nothing.
// Answering it would double every later packet for good: the "Sorcerer's
// Apprentice" bug of RFC 1350, fixed by RFC 1123 section 4.2.3.1.
//
// Packets on the transfer's socket from anyone but the client (another
// address or port: a different transfer ID) get ERROR 5 and change nothing.
#include "tftp/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "util/bytes.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/net.h"

namespace bootfleet::tftp {

using util::Error;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kPollSlice = std::chrono::milliseconds(200);  // how soon stop() is noticed

std::string endpoint_name(const Endpoint& e) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (e.address.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&e.address);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (e.address.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&e.address);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  if (a.address.ss_family != b.address.ss_family) return false;
  if (a.address.ss_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a.address);
    auto* y = reinterpret_cast<const sockaddr_in*>(&b.address);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.address.ss_family == AF_INET6) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a.address);
    auto* y = reinterpret_cast<const sockaddr_in6*>(&b.address);
    return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return false;
}

void set_port(Endpoint& e, uint16_t port) {
  if (e.address.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&e.address)->sin_port = htons(port);
  if (e.address.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&e.address)->sin6_port = htons(port);
}

// A UDP socket on `local`'s address and a port the kernel picks: the
// server's transfer ID. Returns -1 (errno set) on failure.
int open_transfer_socket(const Endpoint& local) {
  int fd = ::socket(local.address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  Endpoint any_port = local;
  set_port(any_port, 0);
  if (local.address.ss_family == AF_INET6) {
    int off = 0;  // v4-mapped peers of a dual-stack listener
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&any_port.address), any_port.length) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

void send_to(int fd, const std::vector<uint8_t>& packet, const Endpoint& to) {
  // UDP: a failed send is a lost packet, which the timeouts already handle.
  (void)::sendto(fd, packet.data(), packet.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&to.address),
                 to.length);
}

// The bytes a transfer sends: a file beneath the root or a virtual file.
class Source {
 public:
  explicit Source(util::UniqueFd fd, std::string name)
      : fd_(std::move(fd)), name_(std::move(name)), size_(util::file_size(fd_.get(), name_)) {}
  explicit Source(std::string content) : content_(std::move(content)), size_(content_.size()), virtual_(true) {}
  uint64_t size() const { return size_; }
  bool is_virtual() const { return virtual_; }
  // Reads block `index` (1-based) of `blksize` bytes into `out`; throws
  // util::Error when the file no longer has the bytes it had at the start.
  size_t read_block(uint64_t index, uint16_t blksize, uint8_t* out) const {
    uint64_t offset = (index - 1) * blksize;
    size_t want = static_cast<size_t>(std::min<uint64_t>(blksize, size_ - std::min(offset, size_)));
    if (want == 0) return 0;
    if (virtual_) {
      std::memcpy(out, content_.data() + offset, want);
      return want;
    }
    size_t got = util::pread_some(fd_.get(), out, want, offset, name_);
    if (got != want) throw Error(name_ + ": the file shrank during the transfer");
    return got;
  }

 private:
  util::UniqueFd fd_;
  std::string name_;
  std::string content_;
  uint64_t size_ = 0;
  bool virtual_ = false;
};

std::string seconds_since(Clock::time_point start) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  char text[32];
  std::snprintf(text, sizeof text, "%.3f s", static_cast<double>(ms) / 1000.0);
  return text;
}

// Parses "ADDR:PORT" for a UDP socket.
std::pair<std::string, std::string> split_address(const std::string& address) {
  util::HostPort hp = util::parse_listen_address(address, "TFTP address");
  return {hp.host, std::to_string(hp.port)};
}

}  // namespace

// One transfer as admission sees it: its peer's address (no port), and
// whether its client ever acknowledged anything (it then exists: a spoofed
// source cannot), or it was evicted for a newcomer.
struct Server::Transfer {
  std::string host;
  std::atomic<bool> acknowledged{false};
  std::atomic<bool> evicted{false};
};

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { stop(); }

void Server::log(const std::string& line) {
  if (options_.log) {
    options_.log(line);
  } else {
    util::log_line(line);
  }
}

uint16_t Server::start() {
  root_ = std::make_unique<Root>(options_.root);
  auto [host, port] = split_address(options_.listen);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  // Every address: one IPv6 socket that takes IPv4 too, if the host has IPv6.
  std::string lookup = host.empty() ? "::" : host;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(lookup.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 && host.empty()) rc = ::getaddrinfo("0.0.0.0", port.c_str(), &hints, &res);
  if (rc != 0) throw Error("TFTP address " + options_.listen + ": " + gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai && !listen_fd_; ai = ai->ai_next) {
    util::UniqueFd fd(::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    int on = 1, off = 0;
    if (ai->ai_family == AF_INET6) {
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    } else {
      ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    }
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = std::strerror(errno);
      continue;
    }
    family_ = ai->ai_family;
    listen_fd_ = std::move(fd);
  }
  ::freeaddrinfo(res);
  if (!listen_fd_) throw Error("TFTP address " + options_.listen + ": cannot listen: " + last_error);
  Endpoint bound;
  bound.length = sizeof bound.address;
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound.address), &bound.length);
  uint16_t bound_port = family_ == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound.address)->sin_port)
                                           : ntohs(reinterpret_cast<sockaddr_in6*>(&bound.address)->sin6_port);
  stopping_ = false;
  listener_ = std::thread([this] { listen_loop(); });
  return bound_port;
}

void Server::stop() {
  stopping_ = true;
  if (listener_.joinable()) listener_.join();
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return transfers_ == 0; });
}

size_t Server::active_transfers() {
  std::lock_guard lock(mutex_);
  return transfers_;
}

void Server::listen_loop() {
  std::vector<uint8_t> buffer(kMaxPacketSize + 1);
  Endpoint bound;
  bound.length = sizeof bound.address;
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound.address), &bound.length);
  while (!stopping_) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kPollSlice.count())) <= 0) continue;
    Endpoint peer;
    iovec iov{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[256];
    msghdr msg{};
    msg.msg_name = &peer.address;
    msg.msg_namelen = sizeof peer.address;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(listen_fd_.get(), &msg, MSG_DONTWAIT);
    if (n < 0) continue;
    peer.length = msg.msg_namelen;
    // The address the request came to (the listener may be bound to every
    // address): the transfer answers from it, or the client would not
    // recognise the reply.
    Endpoint local = bound;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && family_ == AF_INET) {
        in_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        reinterpret_cast<sockaddr_in*>(&local.address)->sin_addr = info.ipi_addr;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && family_ == AF_INET6) {
        in6_pktinfo info;
        std::memcpy(&info, CMSG_DATA(c), sizeof info);
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&local.address);
        in6->sin6_addr = info.ipi6_addr;
        in6->sin6_scope_id = IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr) ? info.ipi6_ifindex : 0;
      }
    }
    if (static_cast<size_t>(n) > kMaxPacketSize) continue;  // truncated: not TFTP
    handle_request(buffer.data(), static_cast<size_t>(n), peer, local);
  }
}

namespace {
// The TFTP side of bootsrv's metrics (docs/status.md): a transfer is what
// a connection is to the TCP protocols.
util::metrics::ProtocolMetrics& tftp_metrics() {
  static util::metrics::ProtocolMetrics m("tftp");
  return m;
}
}  // namespace

void Server::refuse(const Endpoint& peer, const Endpoint& local, ErrorCode code, const std::string& message,
                    const std::string& log_line) {
  log("tftp " + endpoint_name(peer) + " " + log_line);
  tftp_metrics().errors.add();
  int fd = open_transfer_socket(local);
  if (fd < 0) return;
  send_to(fd, build_error(code, message), peer);
  ::close(fd);
}

void Server::handle_request(const uint8_t* data, size_t size, const Endpoint& peer, const Endpoint& local) {
  Packet packet = parse_packet({data, size});
  if (auto* e = std::get_if<ParseError>(&packet)) {
    refuse(peer, local, ErrorCode::illegal_operation, e->message, "refused: malformed request: " + e->message);
    return;
  }
  // Never answer an ERROR: two servers would answer each other forever.
  if (std::holds_alternative<ErrorPacket>(packet)) return;
  auto* request = std::get_if<Request>(&packet);
  if (!request) {
    refuse(peer, local, ErrorCode::illegal_operation, "expected a read request",
           "refused: not a request (opcode " + std::to_string(data[0] << 8 | data[1]) + ")");
    return;
  }
  std::string what = "'" + request->filename + "'";
  if (request->opcode == Opcode::wrq) {
    refuse(peer, local, ErrorCode::access_violation, "read-only server", what + ": write request refused");
    return;
  }
  // netascii is served byte for byte, like octet: boot loaders never ask
  // for it, and converting would make tsize and block offsets lie.
  if (request->mode != "octet" && request->mode != "netascii") {
    refuse(peer, local, ErrorCode::illegal_operation, "unsupported mode '" + request->mode + "'; use octet",
           what + ": refused: mode '" + request->mode + "'");
    return;
  }
  std::string host = endpoint_name(peer);
  host = host.substr(0, host.rfind(':'));
  auto transfer = std::make_shared<Transfer>();
  transfer->host = host;
  std::string refusal, eviction;
  {
    std::lock_guard lock(mutex_);
    size_t mine = 0;
    for (const auto& t : running_) mine += t->host == host;
    if (mine >= options_.max_per_peer) {
      refusal = "refused: " + std::to_string(mine) + " transfers from this address already (the cap per peer is " +
                std::to_string(options_.max_per_peer) + ")";
    } else if (running_.size() >= options_.max_transfers) {
      auto oldest = std::find_if(running_.begin(), running_.end(), [](const auto& t) { return !t->acknowledged; });
      if (oldest == running_.end()) {
        refusal = "refused: busy (" + std::to_string(options_.max_transfers) + " transfers running, each acknowledged)";
      } else {
        (*oldest)->evicted = true;  // its thread sees it within kPollSlice and ends
        eviction = "tftp " + (*oldest)->host + ": a transfer never acknowledged was evicted: " +
                   std::to_string(options_.max_transfers) + " transfers running and " + host + " asked for another";
        running_.erase(oldest);
      }
    }
    if (refusal.empty()) {
      running_.push_back(transfer);
      ++transfers_;
      tftp_metrics().accepted.add();
      tftp_metrics().open.add(1);
    }
  }
  if (!eviction.empty()) log(eviction);
  if (!refusal.empty()) {
    tftp_metrics().refused.add();
    refuse(peer, local, ErrorCode::not_defined, "busy, try again later", what + ": " + refusal);
    return;
  }
  int fd = open_transfer_socket(local);
  if (fd < 0) {
    log("tftp " + endpoint_name(peer) + " " + what + ": no transfer socket: " + std::strerror(errno));
  } else {
    try {
      std::thread([this, request = *request, peer, fd, transfer] {
        run_transfer(request, peer, fd, *transfer);
        ::close(fd);
        end_transfer(transfer);
      }).detach();
      return;
    } catch (const std::system_error& e) {
      ::close(fd);
      log("tftp " + endpoint_name(peer) + " " + what + ": no thread for the transfer: " + e.what());
    }
  }
  end_transfer(transfer);
}

void Server::end_transfer(const std::shared_ptr<Transfer>& transfer) {
  std::lock_guard lock(mutex_);
  running_.remove(transfer);  // unless evicted already
  --transfers_;
  tftp_metrics().open.add(-1);
  idle_.notify_all();
}

void Server::run_transfer(const Request& request, const Endpoint& peer, int fd, Transfer& transfer) {
  const auto start = Clock::now();
  const std::string who = "tftp " + endpoint_name(peer) + " '" + request.filename + "'";
  auto fail = [&](ErrorCode code, const std::string& message) {
    tftp_metrics().errors.add();
    send_to(fd, build_error(code, message), peer);
    log(who + ": " + message);
  };

  auto name = Root::normalize(request.filename, root_->path());
  if (auto* refusal = std::get_if<Refusal>(&name)) {
    fail(refusal->code, refusal->message);
    return;
  }
  const std::string& relative = std::get<std::string>(name);
  std::optional<Source> source;
  try {
    if (options_.virtual_files) {
      if (auto content = options_.virtual_files(relative)) source.emplace(std::move(*content));
    }
    if (!source) {
      auto opened = root_->open(relative);
      if (auto* refusal = std::get_if<Refusal>(&opened)) {
        fail(refusal->code, refusal->message);
        return;
      }
      source.emplace(std::move(std::get<util::UniqueFd>(opened)), root_->path() + "/" + relative);
    }
  } catch (const std::exception& e) {
    fail(ErrorCode::not_defined, std::string("cannot open ") + relative + ": " + e.what());
    return;
  }

  const Negotiation negotiation = negotiate(request.options, options_.limits, source->size());
  const TransferParams& params = negotiation.params;
  const auto timeout = params.timeout_seconds ? std::chrono::milliseconds(params.timeout_seconds * 1000)
                                              : options_.default_timeout;
  const uint64_t total_blocks = source->size() / params.blksize + 1;  // the last one is short, maybe empty
  bool oack_pending = !negotiation.oack.empty();
  uint64_t acked = 0;  // highest block index the client acknowledged
  uint64_t sent = 0;   // highest block index sent
  uint64_t retransmissions = 0;
  int retries = 0;
  std::vector<uint8_t> block(params.blksize);

  auto describe = [&] {
    std::string text = "blksize " + std::to_string(params.blksize);
    if (params.windowsize > 1) text += ", windowsize " + std::to_string(params.windowsize);
    if (params.timeout_seconds) text += ", timeout " + std::to_string(params.timeout_seconds) + " s";
    if (source->is_virtual()) text += ", generated";
    if (retransmissions) text += ", " + std::to_string(retransmissions) + " retransmissions";
    for (const auto& reason : negotiation.ignored) text += "; ignored " + reason;
    return text;
  };
  auto send_window = [&] {
    if (oack_pending) {
      send_to(fd, build_oack(negotiation.oack), peer);
      return;
    }
    uint64_t last = std::min<uint64_t>(acked + params.windowsize, total_blocks);
    for (uint64_t index = acked + 1; index <= last; ++index) {
      size_t length = source->read_block(index, params.blksize, block.data());
      send_to(fd, build_data(static_cast<uint16_t>(index), {block.data(), length}), peer);
    }
    sent = last;
  };

  std::vector<uint8_t> buffer(kMaxPacketSize + 1);
  try {
    send_window();
    auto deadline = Clock::now() + timeout;
    auto last_progress = Clock::now();
    while (true) {
      if (stopping_) {
        fail(ErrorCode::not_defined, "server shutting down");
        return;
      }
      if (transfer.evicted) {
        fail(ErrorCode::not_defined, "busy, try again later");
        log(who + ": evicted: never acknowledged, and a newcomer needed its place");
        return;
      }
      auto now = Clock::now();
      if (now - last_progress >= options_.give_up) {
        log(who + ": gave up: nothing acknowledged for " + seconds_since(last_progress) + " (tftp_give_up) at block " +
            std::to_string(acked + 1) + " of " + std::to_string(total_blocks) + " (" + describe() + ")");
        return;
      }
      if (now >= deadline) {
        if (++retries > options_.max_retries) {
          log(who + ": gave up: timed out after " + std::to_string(options_.max_retries) + " retransmissions at block " +
              std::to_string(acked + 1) + " of " + std::to_string(total_blocks) + " (" + describe() + ")");
          return;
        }
        ++retransmissions;
        send_window();
        deadline = Clock::now() + timeout;
        continue;
      }
      auto wait = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                               std::chrono::milliseconds(1),
                           std::chrono::milliseconds(kPollSlice));
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) continue;
      Endpoint from;
      from.length = sizeof from.address;
      ssize_t n = ::recvfrom(fd, buffer.data(), buffer.size(), MSG_DONTWAIT,
                             reinterpret_cast<sockaddr*>(&from.address), &from.length);
      if (n < 0) continue;
      if (!same_endpoint(from, peer)) {
        // An ERROR is never answered, not even this one: no ping-pong.
        bool is_error = n >= 2 && util::load_be16(buffer.data()) == static_cast<uint16_t>(Opcode::error);
        if (is_error) continue;
        send_to(fd, build_error(ErrorCode::unknown_tid, "unknown transfer ID"), from);
        log(who + ": ERROR 5 to " + endpoint_name(from) + ", a packet from another transfer ID");
        continue;
      }
      Packet packet = parse_packet({buffer.data(), static_cast<size_t>(n)});
      if (auto* error = std::get_if<ErrorPacket>(&packet)) {
        log(who + ": ended by the client: ERROR " + std::to_string(error->code) + " (" +
            error_code_name(error->code) + ") '" + error->message + "' after " +
            std::to_string(std::min(acked * params.blksize, source->size())) + " bytes (" + describe() + ")");
        return;
      }
      auto* ack = std::get_if<Ack>(&packet);
      if (!ack) {
        fail(ErrorCode::illegal_operation, "illegal operation: expected an ACK");
        return;
      }
      bool progress = false;
      if (oack_pending) {
        if (ack->block == 0) {
          oack_pending = false;
          progress = true;
        }
      } else {
        uint64_t index = acked + static_cast<uint16_t>(ack->block - static_cast<uint16_t>(acked));
        if (index > acked && index <= sent) {
          acked = index;
          progress = true;
        }
        // Otherwise a duplicate or a stray number: nothing is sent.
      }
      if (!progress) continue;
      retries = 0;
      last_progress = Clock::now();
      transfer.acknowledged = true;
      if (acked == total_blocks) {
        log(who + ": sent " + std::to_string(source->size()) + " bytes in " + std::to_string(total_blocks) +
            " blocks, " + seconds_since(start) + " (" + describe() + ")");
        if (options_.on_served) {
          std::string host = endpoint_name(peer);
          options_.on_served(relative, host.substr(0, host.rfind(':')));
        }
        return;
      }
      send_window();
      deadline = Clock::now() + timeout;
    }
  } catch (const std::exception& e) {
    fail(ErrorCode::not_defined, e.what());
  }
}

}  // namespace bootfleet::tftp
