#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/net.h"
#include "util/log.h"

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
    case 200: return "OK";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

Server::Server(Handler handler, ServerOptions options) : handler_(std::move(handler)), options_(std::move(options)) {}

Server::~Server() {
  stop();
  wait();
  for (int fd : listen_fds_) ::close(fd);
}

void Server::log(const std::string& line) {
  if (options_.log) options_.log(line);
  else util::log_line(line);
}

uint16_t Server::listen(const std::string& address) {
  util::ListeningSocket l = util::listen_tcp(address, "HTTP");
  listen_fds_.push_back(l.fd);
  return l.port;
}

void Server::start() {
  for (int fd : listen_fds_) acceptors_.emplace_back([this, fd] { accept_loop(fd); });
}

namespace {

// "1.2.3.4" / "[::1]" and the port; an IPv4-mapped IPv6 address is shown
// as IPv4, since that is what the client typed.
std::pair<std::string, uint16_t> address_of(const sockaddr_storage& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa.ss_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return {host, ntohs(in->sin_port)};
  }
  if (sa.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      ::inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      return {host, ntohs(in6->sin6_port)};
    }
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return {"[" + std::string(host) + "]", ntohs(in6->sin6_port)};
  }
  return {"?", 0};
}

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

}  // namespace

void Server::accept_loop(int listen_fd) {
  while (!stopping_) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;  // wakes to notice stop()
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN) log(std::string("http: accept failed: ") + std::strerror(errno));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Connection connection;
    auto [peer_host, peer_port] = address_of(sa);
    connection.peer = peer_host + ":" + std::to_string(peer_port);
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
    std::tie(connection.local_host, connection.local_port) = address_of(local);
    {
      std::lock_guard lock(mutex_);
      if (clients_.size() >= options_.max_connections) {
        static const char kBusy[] =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\nRetry-After: 5\r\n\r\nbusy\n";
        send_all(fd, kBusy, sizeof kBusy - 1);
        ::close(fd);
        log("http " + connection.peer + " refused: " + std::to_string(clients_.size()) + " connections open (503)");
        continue;
      }
      clients_[fd] = connection.peer;
      if (stopping_) ::shutdown(fd, SHUT_RD);
    }
    std::thread([this, fd, connection] {
      try {
        serve(fd, connection);
      } catch (const std::exception& e) {
        log("http " + connection.peer + ": connection ended: " + e.what());
      }
      ::close(fd);
      std::lock_guard lock(mutex_);
      clients_.erase(fd);
      idle_.notify_all();
    }).detach();
  }
}

void Server::serve(int fd, const Connection& connection) {
  std::string buffer;  // bytes read and not yet parsed (pipelined requests)
  char chunk[4096];
  while (!stopping_) {
    size_t end = buffer.find("\r\n\r\n");
    size_t head_length = end == std::string::npos ? 0 : end + 4;
    if (end == std::string::npos) {
      // Some clients end lines with a bare LF.
      size_t lf = buffer.find("\n\n");
      if (lf != std::string::npos) head_length = lf + 2;
    }
    if (head_length == 0) {
      if (buffer.size() > kMaxHeadBytes) {
        respond(fd, connection, nullptr, Response::text(431, "request head larger than 16 KiB"), false);
        return;
      }
      pollfd p{fd, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(options_.idle_timeout.count() * 1000));
      if (rc == 0) return;  // idle: close quietly
      if (rc < 0 && errno == EINTR) continue;
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // closed, or reset
      buffer.append(chunk, static_cast<size_t>(n));
      continue;
    }
    std::string head = buffer.substr(0, head_length);
    buffer.erase(0, head_length);
    Request request;
    try {
      request = parse_request_head(head);
    } catch (const BadRequest& e) {
      respond(fd, connection, nullptr, Response::text(e.status(), e.what()), false);
      return;
    }
    // Request bodies have no meaning here; refusing them keeps framing simple.
    const std::string* length = request.header("content-length");
    if (request.header("transfer-encoding") || (length && *length != "0")) {
      respond(fd, connection, &request, Response::text(413, "request bodies are not accepted"), false);
      return;
    }
    bool keep_alive = request.keep_alive();
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::text(405, "only GET and HEAD are served");
      r.headers.emplace_back("Allow", "GET, HEAD");
      if (!respond(fd, connection, &request, std::move(r), keep_alive) || !keep_alive) return;
      continue;
    }
    Response response;
    try {
      response = handler_(request, connection);
    } catch (const std::exception& e) {
      log("http " + connection.peer + " " + request.target + ": " + e.what());
      response = Response::text(500, "internal error");
    }
    if (!respond(fd, connection, &request, std::move(response), keep_alive) || !keep_alive) return;
  }
}

bool Server::respond(int fd, const Connection& connection, const Request* request, Response response,
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
    ok = send_all(fd, out.data(), out.size());
    if (ok) sent = length;
  } else {
    ok = send_all(fd, out.data(), out.size());
    if (ok && !head_only) {
      off_t pos = static_cast<off_t>(offset);
      while (sent < length) {
        ssize_t n = ::sendfile(fd, file_fd, &pos, std::min<uint64_t>(length - sent, 1u << 20));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          ok = false;  // the peer went away, or the file shrank: the length is a promise we cannot keep
          break;
        }
        sent += static_cast<uint64_t>(n);
      }
    }
  }
  if (file_fd >= 0) ::close(file_fd);
  log("http " + connection.peer + " \"" + (request ? request->method + " " + request->target : std::string("-")) +
      "\" " + std::to_string(response.status) + " " + std::to_string(sent) + (ok ? "" : " (aborted)"));
  return ok;
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  std::lock_guard lock(mutex_);
  for (auto& [fd, peer] : clients_) ::shutdown(fd, SHUT_RD);
}

void Server::wait() {
  for (auto& t : acceptors_)
    if (t.joinable()) t.join();
  acceptors_.clear();
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return clients_.empty(); });
}

size_t Server::connection_count() {
  std::lock_guard lock(mutex_);
  return clients_.size();
}

}  // namespace bootfleet::http
