#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/net.h"
#include "util/log.h"
#include "util/metrics.h"

namespace bootfleet::http {

using util::Error;

Response Response::text(int status, const std::string& body) {
  Response r;
  r.status = status;
  r.body = body.empty() || body.back() == '\n' ? body : body + "\n";
  return r;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
  }
}

Server::Server(Handler handler, ServerOptions options) : handler_(std::move(handler)), options_(std::move(options)) {}

Server::Server(SimpleHandler handler, ServerOptions options)
    : Server(Handler([h = std::move(handler)](const Request& r, const Connection& c, Body&) { return h(r, c); }),
             std::move(options)) {}

Server::~Server() {
  stop();
  wait();
  for (const auto& l : listeners_) ::close(l.fd);
}

bool Connection::peer_is_loopback() const {
  return peer_host == "[::1]" || peer_host.rfind("127.", 0) == 0;
}

size_t Body::read(void* buf, size_t n) {
  if (remaining_ == 0 || n == 0) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
  if (!buffered_.empty()) {
    size_t take = std::min(want, buffered_.size());
    std::memcpy(buf, buffered_.data(), take);
    buffered_.erase(0, take);
    remaining_ -= take;
    return take;
  }
  if (expect_continue_ && !continue_sent_) {
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    continue_sent_ = true;
    if (!stream_.write_all(kContinue, sizeof kContinue - 1)) throw BodyAborted("the client went away");
  }
  size_t got = stream_.read(buf, want);
  if (got == 0) {
    throw BodyAborted("the client left or stalled after " + std::to_string(length_ - remaining_) + " of " +
                      std::to_string(length_) + " body bytes");
  }
  remaining_ -= got;
  return got;
}

std::string Body::read_all(uint64_t limit) {
  if (length_ > limit) {
    throw BadRequest(413, "request body of " + std::to_string(length_) + " bytes is larger than the " +
                              std::to_string(limit) + " bytes this request takes");
  }
  std::string out(static_cast<size_t>(remaining_), '\0');
  size_t done = 0;
  while (done < out.size()) done += read(out.data() + done, out.size() - done);
  return out;
}

void Server::log(const std::string& line) {
  if (options_.log) options_.log(line);
  else util::log_line(line);
}

uint16_t Server::listen(const std::string& address) {
  util::ListeningSocket l = util::listen_tcp(address, "HTTP");
  listeners_.push_back({l.fd, nullptr});
  return l.port;
}

uint16_t Server::listen_tls(const std::string& address, std::shared_ptr<const TlsContext> tls) {
  // OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a peer that left
  // must not kill the process with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  util::ListeningSocket l = util::listen_tcp(address, "HTTPS");
  listeners_.push_back({l.fd, std::move(tls)});
  return l.port;
}

void Server::start() {
  limits_ = std::make_unique<util::PeerLimits>(util::PeerLimits::Options{
      options_.max_connections_per_peer, options_.max_connections,
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.request_timeout), "HTTP"});
  for (const auto& l : listeners_) acceptors_.emplace_back([this, l] { accept_loop(l); });
}

namespace {

bool send_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The HTTP side of bootsrv's metrics (docs/status.md): HTTPS counts as
// http too; the status class keeps the label set at five values.
struct HttpMetrics : util::metrics::ProtocolMetrics {
  util::metrics::Counter& sent = util::metrics::registry().counter(
      "bootfleet_http_response_bytes_total", "Bytes of HTTP response bodies sent (kernels, initrds, scripts, API)");
  util::metrics::Counter* requests[5];
  HttpMetrics() : ProtocolMetrics("http") {
    for (int i = 0; i < 5; ++i) {
      requests[i] = &util::metrics::registry().counter("bootfleet_http_requests_total",
                                                       "HTTP requests answered, by status class",
                                                       {{"code", std::to_string(i + 1) + "xx"}});
    }
  }
};

HttpMetrics& http_metrics() {
  static HttpMetrics m;
  return m;
}

}  // namespace

void Server::accept_loop(const Listener& listener) {
  const std::string scheme = listener.tls ? "https" : "http";
  while (!connections_.stopping()) {
    pollfd p{listener.fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;  // wakes to notice stop()
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int fd = ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN) log(std::string("http: accept failed: ") + std::strerror(errno));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Connection connection;
    auto [peer_host, peer_port] = util::address_of(sa);
    connection.peer = peer_host + ":" + std::to_string(peer_port);
    connection.peer_host = peer_host;
    connection.secure = listener.tls != nullptr;
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
    std::tie(connection.local_host, connection.local_port) = util::address_of(local);
    std::string refusal;
    auto slot = std::make_shared<util::PeerLimits::Slot>(limits_->admit(fd, peer_host, refusal));
    if (!*slot) {
      // Plain text even on a TLS port: no handshake is spent on a refusal.
      static const char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\nRetry-After: 5\r\n\r\nbusy\n";
      if (!listener.tls) send_all(fd, kBusy, sizeof kBusy - 1);
      ::close(fd);
      log(refusal + " (503)");
      http_metrics().refused.add();
      continue;
    }
    http_metrics().accepted.add();
    http_metrics().open.add(1);
    connections_.add(fd, connection.peer);
    std::thread([this, fd, connection, tls = listener.tls, scheme, slot] {
      // Bounds every blocking read and write, the TLS handshake's included.
      set_socket_timeouts(fd, options_.idle_timeout);
      try {
        std::unique_ptr<Stream> stream;
        if (tls) stream = std::make_unique<TlsStream>(*tls, fd);
        else stream = std::make_unique<PlainStream>(fd);
        serve(*stream, connection, *slot);
      } catch (const std::exception& e) {
        log(scheme + " " + connection.peer + ": connection ended: " + e.what());
      }
      slot->release();  // before the descriptor can be reused
      ::close(fd);
      connections_.remove(fd);
      http_metrics().open.add(-1);
    }).detach();
  }
}

void Server::serve(Stream& stream, const Connection& connection, util::PeerLimits::Slot& slot) {
  std::string buffer;  // bytes read and not yet parsed (pipelined requests, the start of a body)
  char chunk[16384];
  while (!connections_.stopping()) {
    size_t end = buffer.find("\r\n\r\n");
    size_t head_length = end == std::string::npos ? 0 : end + 4;
    if (end == std::string::npos) {
      // Some clients end lines with a bare LF.
      size_t lf = buffer.find("\n\n");
      if (lf != std::string::npos) head_length = lf + 2;
    }
    if (head_length == 0) {
      if (buffer.size() > kMaxHeadBytes) {
        respond(stream, connection, nullptr, Response::text(431, "request head larger than 16 KiB"), false);
        return;
      }
      if (!stream.wait_readable(std::chrono::duration_cast<std::chrono::milliseconds>(options_.idle_timeout))) {
        return;  // idle: close quietly
      }
      size_t n = stream.read(chunk, sizeof chunk);
      if (n == 0) return;  // closed, or reset
      buffer.append(chunk, n);
      continue;
    }
    slot.established();  // a whole head: no deadline until the next one
    std::string head = buffer.substr(0, head_length);
    buffer.erase(0, head_length);
    Request request;
    uint64_t body_bytes = 0;
    try {
      request = parse_request_head(head);
      body_bytes = body_length(request, options_.max_body_bytes);
    } catch (const BadRequest& e) {
      respond(stream, connection, request.method.empty() ? nullptr : &request, Response::text(e.status(), e.what()),
              false);
      return;
    }
    bool keep_alive = request.keep_alive();
    if (std::find(options_.methods.begin(), options_.methods.end(), request.method) == options_.methods.end()) {
      std::string allow;
      for (const auto& m : options_.methods) allow += (allow.empty() ? "" : ", ") + m;
      Response r = Response::text(405, request.method + " is not served; methods: " + allow);
      r.headers.emplace_back("Allow", allow);
      // The body (if any) was not read: the connection cannot go on.
      keep_alive = keep_alive && body_bytes == 0;
      if (!respond(stream, connection, &request, std::move(r), keep_alive) || !keep_alive) return;
      slot.waiting(std::chrono::duration_cast<std::chrono::milliseconds>(options_.idle_timeout));
      continue;
    }
    Body body(stream, buffer, body_bytes, expects_continue(request));
    Response response;
    try {
      response = handler_(request, connection, body);
    } catch (const BodyAborted& e) {
      log(std::string(connection.secure ? "https " : "http ") + connection.peer + " \"" + request.method + " " + loggable_target(request.target) + "\": " + e.what());
      return;  // nobody to answer
    } catch (const BadRequest& e) {
      response = Response::text(e.status(), e.what());
    } catch (const std::exception& e) {
      log("http " + connection.peer + " " + loggable_target(request.target) + ": " + e.what());
      response = Response::text(500, "internal error");
    }
    // An unread body cannot be told apart from the next request: close after
    // answering (RFC 9112 section 9.6).
    if (body.remaining() > 0) keep_alive = false;
    if (!respond(stream, connection, &request, std::move(response), keep_alive) || !keep_alive) return;
    slot.waiting(std::chrono::duration_cast<std::chrono::milliseconds>(options_.idle_timeout));
  }
}

bool Server::respond(Stream& stream, const Connection& connection, const Request* request, Response response,
                     bool keep_alive) {
  bool head_only = request && request->method == "HEAD";
  int file_fd = -1;
  uint64_t offset = 0, length = response.body.size();
  std::string extra;
  if (!response.file.empty() && response.status == 200) {
    file_fd = ::open(response.file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st {};
    if (file_fd < 0 || ::fstat(file_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      log("http " + connection.peer + ": cannot open " + response.file + ": " + std::strerror(errno));
      if (file_fd >= 0) ::close(file_fd);
      file_fd = -1;
      response = Response::text(404, "not found");
      length = response.body.size();
    } else {
      uint64_t size = static_cast<uint64_t>(st.st_size);
      length = size;
      extra += "Accept-Ranges: bytes\r\n";
      const std::string* range = request ? request->header("range") : nullptr;
      RangeRequest r = range ? parse_range(*range, size) : RangeRequest{};
      if (r.kind == RangeRequest::kPartial) {
        response.status = 206;
        offset = r.first;
        length = r.last - r.first + 1;
        extra += "Content-Range: bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" +
                 std::to_string(size) + "\r\n";
      } else if (r.kind == RangeRequest::kUnsatisfiable) {
        ::close(file_fd);
        file_fd = -1;
        response.status = 416;
        response.body = "range not satisfiable\n";
        length = response.body.size();
        extra += "Content-Range: bytes */" + std::to_string(size) + "\r\n";
      }
    }
  }
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + reason_phrase(response.status) + "\r\n";
  out += "Content-Type: " + (file_fd >= 0 ? std::string("application/octet-stream") : response.content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(length) + "\r\n";
  out += extra;
  for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  out += "\r\n";
  uint64_t sent = 0;
  bool ok = true;
  if (!head_only && file_fd < 0) {
    out += response.body;
    ok = stream.write_all(out.data(), out.size());
    if (ok) sent = length;
  } else {
    ok = stream.write_all(out.data(), out.size());
    // A short file breaks the promise of Content-Length: the connection ends.
    if (ok && !head_only) ok = stream.send_file(file_fd, offset, length, sent);
  }
  if (file_fd >= 0) ::close(file_fd);
  HttpMetrics& m = http_metrics();
  if (response.status >= 100 && response.status < 600) m.requests[response.status / 100 - 1]->add();
  if (response.status >= 400 || !ok) m.errors.add();
  m.sent.add(sent);
  log(std::string(connection.secure ? "https " : "http ") + connection.peer + " \"" + (request ? request->method + " " + loggable_target(request->target) : std::string("-")) +
      "\" " + std::to_string(response.status) + " " + std::to_string(sent) + (ok ? "" : " (aborted)"));
  return ok;
}

void Server::stop() { connections_.stop(); }

void Server::wait() {
  for (auto& t : acceptors_)
    if (t.joinable()) t.join();
  acceptors_.clear();
  connections_.wait_empty();
}

size_t Server::connection_count() { return connections_.size(); }

}  // namespace bootfleet::http
