// lib/http: request heads, paths, ranges and hosts as peers send them, and
// the server on loopback (keep-alive, pipelining, Range on files, refusals).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "http/request.h"
#include "http/server.h"

using namespace bootfleet::http;

TEST_CASE("request heads: request line, headers, keep-alive", "[http]") {
  Request r = parse_request_head("GET /boot.ipxe HTTP/1.1\r\nHost: 10.0.2.2:8080\r\nUser-Agent:  iPXE/1.21 \r\n\r\n");
  CHECK(r.method == "GET");
  CHECK(r.target == "/boot.ipxe");
  REQUIRE(r.header("host"));
  CHECK(*r.header("host") == "10.0.2.2:8080");
  CHECK(*r.header("user-agent") == "iPXE/1.21");
  CHECK(r.keep_alive());
  CHECK_FALSE(parse_request_head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
  CHECK_FALSE(parse_request_head("GET / HTTP/1.0\r\n\r\n").keep_alive());
  CHECK(parse_request_head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
  CHECK(parse_request_head("GET / HTTP/1.1\n\n").target == "/");  // bare LF

  auto status_of = [](const std::string& head) {
    try {
      parse_request_head(head);
    } catch (const BadRequest& e) {
      return e.status();
    }
    return 0;
  };
  CHECK(status_of("") == 400);
  CHECK(status_of("GET /\r\n\r\n") == 400);
  CHECK(status_of("GET  / HTTP/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/2.0\r\n\r\n") == 505);
  CHECK(status_of("GET /a\x01 HTTP/1.1\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nNo colon\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n") == 400);
  CHECK(status_of("GET /" + std::string(3000, 'a') + " HTTP/1.1\r\n\r\n") == 414);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 70; ++i) many += "X-" + std::to_string(i) + ": y\r\n";
  CHECK(status_of(many + "\r\n") == 431);
}

TEST_CASE("paths split into decoded segments; anything that could climb out is refused", "[http]") {
  using V = std::vector<std::string>;
  CHECK(split_path("/") == V{});
  CHECK(split_path("/boot.ipxe") == V{"boot.ipxe"});
  CHECK(split_path("/artifacts/tiny-linux%401/vmlinuz?x=1") == V{"artifacts", "tiny-linux@1", "vmlinuz"});
  for (const char* bad : {"/boot/", "/artifacts/lab@3/vmlinuz/", "", "boot.ipxe", "http://x/", "/a//b", "/..", "/a/../b", "/a/./b", "/%2e%2e/x", "/..%2f..",
                          "/a%2fb", "/a%5cb", "/a\\b", "/a%00b", "/a%0a", "/a%", "/a%4", "/a%zz", "/a/%2E%2E"}) {
    INFO(bad);
    CHECK_FALSE(split_path(bad).has_value());
  }
}

TEST_CASE("Range: one byte range is served, the rest ignored or unsatisfiable", "[http]") {
  auto partial = [](const std::string& h, uint64_t size, uint64_t first, uint64_t last) {
    RangeRequest r = parse_range(h, size);
    INFO(h);
    CHECK(r.kind == RangeRequest::kPartial);
    CHECK(r.first == first);
    CHECK(r.last == last);
  };
  partial("bytes=0-99", 1000, 0, 99);
  partial("bytes=100-", 1000, 100, 999);
  partial("bytes=-100", 1000, 900, 999);
  partial("bytes=-5000", 1000, 0, 999);
  partial("bytes=990-5000", 1000, 990, 999);
  partial("Bytes=1-1", 1000, 1, 1);  // the unit is case-insensitive
  for (const char* ignored : {"", "bytes", "items=0-1", "bytes=5-1", "bytes=0-1,5-6", "bytes=a-b", "bytes=-"}) {
    INFO(ignored);
    CHECK(parse_range(ignored, 1000).kind == RangeRequest::kWhole);
  }
  CHECK(parse_range("bytes=1000-", 1000).kind == RangeRequest::kUnsatisfiable);
  // Numbers past 64 bits: a first byte past any file, a last byte or a
  // suffix that reach its end (RFC 9110 14.1.2: clamped, not ignored).
  CHECK(parse_range("bytes=99999999999999999999-", 1000).kind == RangeRequest::kUnsatisfiable);
  partial("bytes=0-18446744073709551615", 1000, 0, 999);
  partial("bytes=10-99999999999999999999999", 1000, 10, 999);
  partial("bytes=-99999999999999999999999", 1000, 0, 999);
  partial("bytes=18446744073709551614-18446744073709551615", 18446744073709551615ull, 18446744073709551614ull,
          18446744073709551614ull);
  CHECK(parse_range("bytes=-0", 1000).kind == RangeRequest::kUnsatisfiable);
  CHECK(parse_range("bytes=0-", 0).kind == RangeRequest::kUnsatisfiable);
}

TEST_CASE("Host headers: names, IPv4, bracketed IPv6, each with an optional port", "[http]") {
  for (const char* good : {"boot", "10.0.2.2", "10.0.2.2:8080", "[::1]", "[::1]:80", "bootsrv.lab.example:65535"}) {
    INFO(good);
    CHECK(valid_host(good));
  }
  for (const char* bad : {"", ":80", "a:", "a:65536", "a:8o", "a/b", "a b", "[::1", "[zz]", "[::1]x", "a\"b", "a:1:2"}) {
    INFO(bad);
    CHECK_FALSE(valid_host(bad));
  }
  CHECK(host_without_port("10.0.2.2:8080") == "10.0.2.2");
  CHECK(host_without_port("[::1]:8080") == "[::1]");
  CHECK(host_without_port("boot") == "boot");
}

namespace {
// A TCP connection to 127.0.0.1:port (the caller closes it).
int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}
// One exchange on a fresh loopback connection: sends `text`, reads until the
// server closes.
std::string roundtrip(uint16_t port, const std::string& text) {
  int fd = connect_loopback(port);
  REQUIRE(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("the server: pipelined keep-alive requests, files with Range, HEAD, refusals", "[http]") {
  auto dir = std::filesystem::temp_directory_path() / ("bootfleet-http-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string file = (dir / "kernel").string();
  std::ofstream(file) << "0123456789";
  std::vector<std::string> log;
  std::mutex log_mutex;
  ServerOptions options;
  options.log = [&](const std::string& line) {
    std::lock_guard lock(log_mutex);
    log.push_back(line);
  };
  Server server(
      [&](const Request& r, const Connection& c) {
        if (r.target == "/kernel") {
          Response f;
          f.file = file;
          return f;
        }
        if (r.target == "/where") return Response::text(200, c.local_host + " " + std::to_string(c.local_port));
        return Response::text(404, "not found");
      },
      options);
  uint16_t port = server.listen("127.0.0.1:0");
  server.start();

  std::string out = roundtrip(port,
                             "GET /kernel HTTP/1.1\r\nRange: bytes=2-4\r\n\r\n"
                             "HEAD /kernel HTTP/1.1\r\n\r\n"
                             "GET /kernel HTTP/1.1\r\nRange: bytes=10-\r\n\r\n"
                             "GET /where HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(out.find("HTTP/1.1 206 Partial Content\r\n") == 0);
  CHECK(out.find("Content-Range: bytes 2-4/10\r\nConnection: keep-alive\r\n\r\n234HTTP/1.1 200 OK") != std::string::npos);
  CHECK(out.find("Content-Length: 10\r\nAccept-Ranges: bytes\r\nConnection: keep-alive\r\n\r\nHTTP/1.1 416") !=
        std::string::npos);
  CHECK(out.find("Content-Range: bytes */10") != std::string::npos);
  CHECK(out.find("\r\n\r\n127.0.0.1 " + std::to_string(port) + "\n") != std::string::npos);
  CHECK(count(out, "HTTP/1.1 ") == 4);

  CHECK(roundtrip(port, "POST /kernel HTTP/1.1\r\nConnection: close\r\n\r\n").find("HTTP/1.1 405") == 0);
  CHECK(roundtrip(port, "GET /kernel HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").find("HTTP/1.1 413") == 0);
  CHECK(roundtrip(port, "GARBAGE\r\n\r\n").find("HTTP/1.1 400") == 0);
  CHECK(roundtrip(port, "GET / HTTP/1.1\r\n" + std::string(20000, 'x')).find("HTTP/1.1 431") == 0);
  // Still serving after all of that.
  CHECK(roundtrip(port, "GET /kernel HTTP/1.0\r\n\r\n").find("\r\n\r\n0123456789") != std::string::npos);
  server.stop();
  server.wait();
  std::lock_guard lock(log_mutex);
  bool logged = false;
  for (const auto& line : log) logged |= line.find("\"GET /kernel\" 206 3") != std::string::npos;
  CHECK(logged);
  std::filesystem::remove_all(dir);
}

TEST_CASE("request bodies: Content-Length framing, 411 for chunked, 413 above the limit", "[http]") {
  auto head = [](const std::string& headers) { return parse_request_head("POST /x HTTP/1.1\r\n" + headers + "\r\n"); };
  CHECK(body_length(head(""), 100) == 0);
  CHECK(body_length(head("Content-Length: 0\r\n"), 0) == 0);
  CHECK(body_length(head("Content-Length: 42\r\n"), 100) == 42);
  CHECK(body_length(head("Content-Length: 42\r\nContent-Length: 42\r\n"), 100) == 42);
  auto status_of = [&](const std::string& headers, uint64_t max) {
    try {
      body_length(head(headers), max);
      return 0;
    } catch (const BadRequest& e) {
      return e.status();
    }
  };
  CHECK(status_of("Transfer-Encoding: chunked\r\n", 100) == 411);
  CHECK(status_of("Content-Length: 101\r\n", 100) == 413);
  CHECK(status_of("Content-Length: 1\r\n", 0) == 413);
  CHECK(status_of("Content-Length: -1\r\n", 100) == 400);
  CHECK(status_of("Content-Length: 1e3\r\n", 100) == 400);
  CHECK(status_of("Content-Length: 99999999999999999999\r\n", 100) == 400);
  CHECK(status_of("Content-Length: 4\r\nContent-Length: 5\r\n", 100) == 400);
  CHECK(expects_continue(head("Expect: 100-Continue\r\n")));
  CHECK_FALSE(expects_continue(head("")));
}

TEST_CASE("query parameters", "[http]") {
  CHECK(query_param("/u/disk?offset=4096", "offset") == "4096");
  CHECK(query_param("/u/disk?a=1&offset=7&b", "offset") == "7");
  CHECK(query_param("/u/disk?x=%41%42", "x") == "AB");
  CHECK(query_param("/u/disk?offset", "offset") == "");
  CHECK_FALSE(query_param("/u/disk", "offset"));
  CHECK_FALSE(query_param("/u/disk?offsets=1", "offset"));
  CHECK_FALSE(query_param("/u/disk?x=%4", "x"));
  CHECK_FALSE(query_param("/u/disk?x=%zz", "x"));
}

TEST_CASE("the server streams bodies; a client that leaves mid-body hurts nobody", "[http]") {
  ServerOptions options;
  options.methods = {"GET", "HEAD", "POST", "PUT", "DELETE"};
  options.max_body_bytes = 1 << 20;
  options.log = [](const std::string&) {};
  std::atomic<int> aborted{0};
  Server server(
      [&](const Request& r, const Connection&, Body& body) {
        if (r.target == "/echo") {
          // Read in small pieces, as an upload does.
          std::string got;
          char piece[7];
          try {
            while (size_t n = body.read(piece, sizeof piece)) got.append(piece, n);
          } catch (const BodyAborted&) {
            ++aborted;
            throw;
          }
          return Response::text(200, std::to_string(got.size()) + ":" + got);
        }
        if (r.target == "/small") return Response::text(200, body.read_all(4));
        return Response::text(200, "ignored " + std::to_string(body.length()));
      },
      options);
  uint16_t port = server.listen("127.0.0.1:0");
  server.start();
  std::string out = roundtrip(port,
                             "POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"
                             "PUT /echo HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
  CHECK(out.find("\r\n\r\n11:hello world\n") != std::string::npos);
  CHECK(out.find("\r\n\r\n3:abc\n") != std::string::npos);
  // A body the handler did not read ends the connection after the answer.
  out = roundtrip(port, "POST /other HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /echo HTTP/1.1\r\n\r\n");
  CHECK(out.find("ignored 5") != std::string::npos);
  CHECK(out.find("Connection: close") != std::string::npos);
  CHECK(count(out, "HTTP/1.1 ") == 1);
  CHECK(roundtrip(port, "POST /small HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").find("HTTP/1.1 413") == 0);
  CHECK(roundtrip(port, "POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n").find("HTTP/1.1 413") == 0);
  CHECK(roundtrip(port, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").find("HTTP/1.1 411") == 0);
  CHECK(roundtrip(port, "PATCH /echo HTTP/1.1\r\n\r\n").find("HTTP/1.1 405") == 0);
  // Expect: 100-continue gets its 100 when the handler reads, and only then
  // does the client send the body.
  {
    int fd = connect_loopback(port);
    std::string head = "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n";
    ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    CHECK(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0) == "HTTP/1.1 100 Continue\r\n\r\n");
    ::send(fd, "hi", 2, MSG_NOSIGNAL);
    std::string rest;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) rest.append(buf, static_cast<size_t>(n));
    ::close(fd);
    CHECK(rest.find("HTTP/1.1 200 OK") == 0);
    CHECK(rest.find("2:hi") != std::string::npos);
  }
  // Half a body, then the client leaves: only its connection ends.
  {
    int fd = connect_loopback(port);
    std::string partial = "POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\nonly this";
    ::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
    ::usleep(100000);
    ::close(fd);
  }
  for (int i = 0; i < 50 && aborted == 0; ++i) ::usleep(20000);
  CHECK(aborted == 1);
  CHECK(roundtrip(port, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").find("2:ok") !=
        std::string::npos);
  server.stop();
  server.wait();
}
