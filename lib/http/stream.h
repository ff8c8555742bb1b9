// The byte stream under one HTTP connection: a plain TCP socket, or TLS over
// one (OpenSSL). The connection loop in server.cc reads and writes through
// this interface only, so HTTP and HTTPS share every line of the protocol.
//
// Design note. Sockets stay blocking; every accepted socket gets send and
// receive timeouts (SO_SNDTIMEO/SO_RCVTIMEO), so neither a silent peer nor
// one that stops reading in the middle of a TLS record can hold a thread
// forever. Idle waiting between requests is a poll() with the idle timeout,
// after asking TLS whether it already holds decrypted bytes (a poll on the
// socket would not see those). The TLS handshake runs on the connection's
// own thread, never in the accept loop, so a slow or hostile handshake
// delays nobody else.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace bootfleet::http {

class Stream {
 public:
  virtual ~Stream() = default;
  // Up to `n` bytes; 0 when the peer closed, timed out or broke the stream.
  virtual size_t read(void* buf, size_t n) = 0;
  // False when the peer went away.
  virtual bool write_all(const void* data, size_t n) = 0;
  // Sends `length` bytes of `file_fd` from `offset`; adds what went out to
  // `sent`. False when the peer went away or the file ended early.
  virtual bool send_file(int file_fd, uint64_t offset, uint64_t length, uint64_t& sent) = 0;
  // Waits until a read would not block: true when there is something to read
  // (or the peer closed), false after `timeout`.
  virtual bool wait_readable(std::chrono::milliseconds timeout) = 0;
  virtual bool secure() const = 0;
};

// A plain socket; does not own the descriptor (the server closes it).
class PlainStream : public Stream {
 public:
  explicit PlainStream(int fd) : fd_(fd) {}
  size_t read(void* buf, size_t n) override;
  bool write_all(const void* data, size_t n) override;
  bool send_file(int file_fd, uint64_t offset, uint64_t length, uint64_t& sent) override;
  bool wait_readable(std::chrono::milliseconds timeout) override;
  bool secure() const override { return false; }

 private:
  int fd_;
};

// A certificate and its key, loaded once and shared by every TLS connection.
class TlsContext {
 public:
  // Loads a PEM certificate (chain) and its private key. Throws util::Error
  // naming the file and OpenSSL's reason; checks the key matches.
  TlsContext(const std::string& cert_file, const std::string& key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

class TlsStream : public Stream {
 public:
  // Runs the server side of the handshake on `fd` (which it does not own).
  // Throws util::Error with the reason when it fails; a peer that speaks
  // plain HTTP to this port is told so in a plain 400 answer first.
  TlsStream(const TlsContext& context, int fd);
  ~TlsStream() override;
  size_t read(void* buf, size_t n) override;
  bool write_all(const void* data, size_t n) override;
  bool send_file(int file_fd, uint64_t offset, uint64_t length, uint64_t& sent) override;
  bool wait_readable(std::chrono::milliseconds timeout) override;
  bool secure() const override { return true; }

 private:
  int fd_;
  SSL* ssl_ = nullptr;
};

// Sets the socket's send and receive timeouts.
void set_socket_timeouts(int fd, std::chrono::seconds timeout);

}  // namespace bootfleet::http
