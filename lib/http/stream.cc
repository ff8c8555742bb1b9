#include "http/stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "util/error.h"

namespace bootfleet::http {

using util::Error;

namespace {

// OpenSSL's queued errors as one line (and the queue cleared), for logs.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

bool poll_in(int fd, std::chrono::milliseconds timeout) {
  while (true) {
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc < 0 && errno == EINTR) continue;
    return rc != 0;  // readable, hung up, or an error a read will report
  }
}

}  // namespace

void set_socket_timeouts(int fd, std::chrono::seconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

size_t PlainStream::read(void* buf, size_t n) {
  while (true) {
    ssize_t got = ::recv(fd_, buf, n, 0);
    if (got < 0 && errno == EINTR) continue;
    return got > 0 ? static_cast<size_t>(got) : 0;  // closed, reset or timed out
  }
}

bool PlainStream::write_all(const void* data, size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t sent = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    p += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

bool PlainStream::send_file(int file_fd, uint64_t offset, uint64_t length, uint64_t& sent) {
  off_t pos = static_cast<off_t>(offset);
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::sendfile(fd_, file_fd, &pos, std::min<uint64_t>(length - done, 1u << 20));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // the peer went away, or the file shrank
    done += static_cast<uint64_t>(n);
    sent += static_cast<uint64_t>(n);
  }
  return true;
}

bool PlainStream::wait_readable(std::chrono::milliseconds timeout) { return poll_in(fd_, timeout); }

TlsContext::TlsContext(const std::string& cert_file, const std::string& key_file) {
  ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx_) throw Error("TLS: cannot create a context: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION);
  // Writes from a connection thread to a peer that vanished must fail, not
  // retry: the socket is blocking and has a send timeout.
  SSL_CTX_set_mode(ctx_, SSL_MODE_AUTO_RETRY);
  if (SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1) {
    std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    throw Error(cert_file + ": cannot load the TLS certificate (PEM expected): " + why);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    throw Error(key_file + ": cannot load the TLS private key (PEM expected): " + why);
  }
  if (SSL_CTX_check_private_key(ctx_) != 1) {
    std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    throw Error(key_file + ": the private key does not match the certificate " + cert_file + ": " + why);
  }
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsStream::TlsStream(const TlsContext& context, int fd) : fd_(fd) {
  // A TLS client opens with a handshake record (content type 22). Anything
  // that looks like a request line is a plain HTTP client on the wrong port:
  // tell it in words it can read, as nginx does, instead of a TLS alert.
  char first = 0;
  ssize_t peeked;
  do {
    peeked = ::recv(fd_, &first, 1, MSG_PEEK);
  } while (peeked < 0 && errno == EINTR);
  if (peeked <= 0) throw Error("TLS: the client closed or timed out before the handshake");
  if (first != 0x16) {
    if (first >= 'A' && first <= 'Z') {
      const std::string body = "this port speaks HTTPS: a plain HTTP request was sent to it; use https://\n";
      const std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      PlainStream(fd_).write_all(answer.data(), answer.size());
      throw Error("TLS: a plain HTTP request on the HTTPS port (answered 400)");
    }
    throw Error("TLS: the client did not start with a TLS handshake (first byte " + std::to_string(
                static_cast<unsigned char>(first)) + ")");
  }
  ssl_ = SSL_new(context.get());
  if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) {
    if (ssl_) SSL_free(ssl_);
    throw Error("TLS: cannot set up the connection: " + openssl_errors());
  }
  ERR_clear_error();
  int rc = SSL_accept(ssl_);
  if (rc != 1) {
    int err = SSL_get_error(ssl_, rc);
    std::string why = err == SSL_ERROR_SYSCALL ? "the client went away or timed out" : openssl_errors();
    SSL_free(ssl_);
    ssl_ = nullptr;
    throw Error("TLS handshake failed: " + why);
  }
}

TlsStream::~TlsStream() {
  if (ssl_) {
    // A close_notify, without waiting for the peer's: we close the socket next.
    SSL_shutdown(ssl_);
    SSL_free(ssl_);
  }
  ERR_clear_error();
}

size_t TlsStream::read(void* buf, size_t n) {
  ERR_clear_error();
  int got = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
  if (got > 0) return static_cast<size_t>(got);
  ERR_clear_error();
  return 0;  // close_notify, a reset, a timeout or a protocol error: the stream is over
}

bool TlsStream::write_all(const void* data, size_t n) {
  auto* p = static_cast<const char*>(data);
  while (n > 0) {
    int chunk = static_cast<int>(std::min<size_t>(n, 1 << 20));
    ERR_clear_error();
    int sent = SSL_write(ssl_, p, chunk);
    if (sent <= 0) {
      ERR_clear_error();
      return false;
    }
    p += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

bool TlsStream::send_file(int file_fd, uint64_t offset, uint64_t length, uint64_t& sent) {
  // No kernel TLS here: read and encrypt in 256 KiB pieces.
  std::vector<char> buf(256 * 1024);
  uint64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(length - done, buf.size()));
    ssize_t n = ::pread(file_fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (!write_all(buf.data(), static_cast<size_t>(n))) return false;
    done += static_cast<uint64_t>(n);
    sent += static_cast<uint64_t>(n);
  }
  return true;
}

bool TlsStream::wait_readable(std::chrono::milliseconds timeout) {
  if (SSL_pending(ssl_) > 0) return true;
  return poll_in(fd_, timeout);
}

}  // namespace bootfleet::http
