#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "util/args.h"
#include "util/bytes.h"
#include "util/connection_set.h"
#include "util/error.h"
#include "util/mac.h"
#include "util/net.h"
#include "util/peer_limits.h"
#include "util/size.h"
#include "util/text.h"

using namespace bootfleet::util;

TEST_CASE("parse_size accepts plain and suffixed sizes", "[util]") {
  CHECK(parse_size("512", "x") == 512);
  CHECK(parse_size("4K", "x") == 4096);
  CHECK(parse_size("4KiB", "x") == 4096);
  CHECK(parse_size("20G", "x") == 20ull << 30);
  CHECK(parse_size("1.5T", "x") == (3ull << 40) / 2);
  CHECK(parse_size("2m", "x") == 2ull << 20);
}

TEST_CASE("parse_size rejects junk with a message naming the field", "[util]") {
  CHECK_THROWS_WITH(parse_size("", "--size"), Catch::Contains("--size"));
  CHECK_THROWS_WITH(parse_size("12X", "--size"), Catch::Contains("unknown unit"));
  CHECK_THROWS_WITH(parse_size("1.2.3G", "--size"), Catch::Contains("decimal"));
  CHECK_THROWS_WITH(parse_size("0.3", "--size"), Catch::Contains("whole number"));
  CHECK_THROWS_WITH(parse_size("99999999999999999999T", "--size"), Catch::Contains("too large"));
  CHECK_THROWS(parse_size("-1", "--size"));
  // Only Error escapes, never std::stold's invalid_argument or out_of_range.
  CHECK_THROWS_AS(parse_size(".", "--size"), Error);
  CHECK_THROWS_AS(parse_size(".K", "--size"), Error);
  CHECK_THROWS_AS(parse_size("0." + std::string(5000, '0') + "1", "--size"), Error);
  CHECK_THROWS_AS(parse_size(std::string(5000, '9') + ".5", "--size"), Error);
}

TEST_CASE("format_size renders binary units", "[util]") {
  CHECK(format_size(0) == "0 B");
  CHECK(format_size(1536) == "1.5 KiB");
  CHECK(format_size(20ull << 30) == "20 GiB");
}

TEST_CASE("is_all_zero finds a single set byte anywhere", "[util]") {
  std::vector<uint8_t> buf(4096 + 7, 0);
  CHECK(is_all_zero(buf.data(), buf.size()));
  for (size_t at : {size_t{0}, size_t{7}, size_t{63}, size_t{64}, size_t{4000}, buf.size() - 1}) {
    buf[at] = 1;
    CHECK_FALSE(is_all_zero(buf.data(), buf.size()));
    CHECK(is_all_zero(buf.data() + at + 1, buf.size() - at - 1));
    buf[at] = 0;
  }
  CHECK(is_all_zero(buf.data() + 3, 0));
}

TEST_CASE("UTF-16 round trips in both byte orders", "[util]") {
  for (bool be : {true, false}) {
    std::string text = "lab-win10 \xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80.vhd";  // é € 😀
    std::string utf16 = utf8_to_utf16(text, be);
    std::vector<uint8_t> bytes(utf16.begin(), utf16.end());
    CHECK(utf16_to_utf8(bytes, be) == text);
  }
  // Big-endian "A" then a NUL terminator and garbage after it.
  std::vector<uint8_t> name = {0, 'A', 0, 0, 0, 'B'};
  CHECK(utf16_to_utf8(name, true) == "A");
  // A lone surrogate becomes U+FFFD.
  std::vector<uint8_t> lone = {0xD8, 0x00, 0, 'x'};
  CHECK(utf16_to_utf8(lone, true) == "\xef\xbf\xbdx");
}

TEST_CASE("big-endian loads and stores", "[util]") {
  uint8_t b[8];
  store_be64(b, 0x0102030405060708ull);
  CHECK(b[0] == 1);
  CHECK(b[7] == 8);
  CHECK(load_be64(b) == 0x0102030405060708ull);
  store_be16(b, 0xBEEF);
  CHECK(load_be16(b) == 0xBEEF);
}

TEST_CASE("MAC addresses: four written forms, one normalized form", "[util]") {
  CHECK(parse_mac("52:54:00:12:34:56") == "52:54:00:12:34:56");
  CHECK(parse_mac("52-54-00-AB-cd-EF") == "52:54:00:ab:cd:ef");
  CHECK(parse_mac("5254.00ab.CDEF") == "52:54:00:ab:cd:ef");
  CHECK(parse_mac("525400ABCDEF") == "52:54:00:ab:cd:ef");
  for (const char* bad : {"", "52:54:00:12:34", "52:54:00:12:34:5g", "52:54-00:12:34:56", "52.54.00.12.34.56",
                          "5254:00ab:cdef", "525400abcdef0", "52:54:00:12:34:56 ", "5254.00ab.cdef.", "../../etc"}) {
    INFO(bad);
    CHECK_FALSE(parse_mac(bad).has_value());
  }
  CHECK(mac_with_hyphens("52:54:00:ab:cd:ef") == "52-54-00-ab-cd-ef");
  CHECK_THROWS_WITH(normalize_mac("nope"), Catch::Contains("'nope' is not a MAC address") &&
                                                     Catch::Contains("aabb.ccdd.eeff"));
}

TEST_CASE("ConnectionSet: a connection stuck sending to a client that never reads is ended after the grace period", "[util]") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  ConnectionSet set;
  REQUIRE(set.add(fds[0], "stuck peer"));
  std::atomic<bool> ended{false};
  std::thread sender([&] {
    // What a connection thread does: send until the socket fails, then leave.
    std::vector<char> chunk(65536, 'x');
    while (::send(fds[0], chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) {
    }
    set.remove(fds[0]);
    ended = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its buffers are full: it is blocked
  CHECK_FALSE(ended);
  set.stop();
  auto start = std::chrono::steady_clock::now();
  set.wait_empty(std::chrono::milliseconds(300));
  auto waited = std::chrono::steady_clock::now() - start;
  sender.join();
  CHECK(ended);
  CHECK(waited >= std::chrono::milliseconds(250));  // stop() alone (read side shut) did not end it
  CHECK(set.size() == 0);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("parse_port and parse_listen_address refuse ports outside 0-65535 by name", "[util]") {
  CHECK(parse_port("69", "--tftp-listen", false) == 69);
  CHECK(parse_port("65535", "x", false) == 65535);
  CHECK(parse_port("0", "x", true) == 0);
  // getaddrinfo takes 99999 as 34463: every listener comes through here.
  CHECK_THROWS_WITH(parse_port("99999", "--listen", true), "--listen: port 99999 is outside 0-65535 (0: any free port)");
  CHECK_THROWS_WITH(parse_port("65536", "x", true), Catch::Contains("outside"));
  CHECK_THROWS_WITH(parse_port("0", "--http-port", false), "--http-port: port 0 is outside 1-65535");
  CHECK_THROWS_WITH(parse_port("", "x", true), Catch::Contains("is not a number"));
  CHECK_THROWS_WITH(parse_port("80a", "x", true), Catch::Contains("'80a' is not a number"));
  CHECK_THROWS_WITH(parse_port("-1", "x", true), Catch::Contains("is not a number"));
  CHECK_THROWS_WITH(parse_port("1234567890123", "x", true), Catch::Contains("is not a number"));

  HostPort a = parse_listen_address("127.0.0.1:10809", "--listen");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 10809);
  HostPort b = parse_listen_address("[::1]:69", "--tftp-listen");
  CHECK(b.host == "::1");
  CHECK(b.port == 69);
  HostPort c = parse_listen_address(":8080", "--http-listen");
  CHECK(c.host.empty());
  CHECK(c.port == 8080);
  CHECK_THROWS_WITH(parse_listen_address("127.0.0.1:99999", "--listen"),
                    "--listen: '127.0.0.1:99999': port 99999 is outside 0-65535 (0: any free port)");
  CHECK_THROWS_WITH(parse_listen_address(":165536", "--http-listen"), Catch::StartsWith("--http-listen: ':165536': port"));
  CHECK_THROWS_WITH(parse_listen_address(":0", "--tftp-listen", false), Catch::Contains("outside 1-65535"));
  CHECK_THROWS_WITH(parse_listen_address("localhost", "--listen"), Catch::Contains("expected ADDRESS:PORT"));
  CHECK_THROWS_WITH(parse_listen_address("::1:80", "--listen"), Catch::Contains("in brackets"));
  CHECK_THROWS_WITH(parse_listen_address("127.0.0.1:", "--listen"), Catch::Contains("is not a number"));
}

TEST_CASE("listen_tcp refuses a port past 65535 instead of binding another", "[util]") {
  CHECK_THROWS_WITH(listen_tcp("127.0.0.1:99999", "NBD"), Catch::StartsWith("NBD address: '127.0.0.1:99999': port 99999"));
  ListeningSocket any = listen_tcp("127.0.0.1:0", "NBD");
  CHECK(any.port != 0);
  ::close(any.fd);
}

TEST_CASE("did_you_mean finds a likely typo among known words, or says nothing", "[util]") {
  CHECK(did_you_mean("listn", {"listen", "store"}) == " (did you mean 'listen'?)");
  CHECK(did_you_mean("copy_in", {"copy-in", "copy-out"}) == " (did you mean 'copy-in'?)");
  CHECK(did_you_mean("frobnicate", {"listen", "store"}).empty());
  CHECK(did_you_mean("ab", {"x"}).empty());  // not closer than the word's own length
  CHECK(did_you_mean(std::string(100, 'a'), {"a"}).empty());
  CHECK(edit_distance("kitten", "sitting") == 3);
}

TEST_CASE("yaml_tab_hint names the first tab-indented line up to the error", "[util]") {
  CHECK(yaml_tab_hint("a:\n\tb: 1\n", 2) == "; YAML forbids tabs for indentation and line 2 is indented with one (indent with spaces)");
  CHECK(yaml_tab_hint("a:\n  \tb: 1\n", 3).find("line 2") != std::string::npos);
  CHECK(yaml_tab_hint("a:\n  b: 1\n\tc: 2\n", 2).empty());  // the tab is after where the parser stopped
  CHECK(yaml_tab_hint("a: \"x\ty\"\n", 1).empty());          // a tab inside a value is no indentation
  CHECK(yaml_tab_hint("", 1).empty());
}

TEST_CASE("move_global_options moves options before the command to after it", "[util]") {
  using V = std::vector<std::string>;
  const V global = {"--store", "--config", "-c"};
  CHECK(move_global_options({"--store", "/s", "versions", "lab"}, global) == V{"versions", "--store", "/s", "lab"});
  CHECK(move_global_options({"--store=/s", "-c", "f.yaml", "serve", "-l", ":1"}, global) ==
        V{"serve", "--store=/s", "-c", "f.yaml", "-l", ":1"});
  CHECK(move_global_options({"versions", "--store", "/s"}, global) == V{"versions", "--store", "/s"});
  CHECK(move_global_options({"--store", "/s", "--help"}, global) == V{"--help", "--store", "/s"});
  CHECK(move_global_options({}, global).empty());
  CHECK_THROWS_WITH(move_global_options({"--store"}, global), Catch::Contains("--store needs a value"));
  CHECK_THROWS_WITH(move_global_options({"--store", "/s"}, global), Catch::Contains("no command after --store"));
}

// A connected socket pair: `first` is the one PeerLimits shuts, `second`
// sees end-of-file when it does.
struct SocketPair {
  int first = -1, second = -1;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    first = fds[0];
    second = fds[1];
  }
  ~SocketPair() {
    ::close(first);
    ::close(second);
  }
  // The peer end saw the shutdown within `ms`.
  bool shut(int ms = 2000) const {
    pollfd p{second, POLLIN, 0};
    char c;
    return ::poll(&p, 1, ms) == 1 && ::recv(second, &c, 1, MSG_DONTWAIT) == 0;
  }
};

TEST_CASE("PeerLimits: caps per peer and in all, each refusal names the cap", "[util]") {
  PeerLimits limits({.per_peer = 2, .total = 3, .handshake = std::chrono::seconds(60), .what = "TEST"});
  SocketPair a, b, c, d, e;
  std::string why;
  auto s1 = limits.admit(a.first, "10.0.0.1", why);
  auto s2 = limits.admit(b.first, "10.0.0.1", why);
  REQUIRE(s1);
  REQUIRE(s2);
  auto s3 = limits.admit(c.first, "10.0.0.1", why);
  CHECK_FALSE(s3);
  CHECK(why == "TEST 10.0.0.1: refused: 2 connections from this address already (the cap per peer is 2)");
  s1.established();
  s2.established();
  auto s4 = limits.admit(d.first, "10.0.0.2", why);
  REQUIRE(s4);
  s4.established();
  CHECK(limits.total() == 3);
  auto s5 = limits.admit(e.first, "10.0.0.3", why);  // full, nobody waiting: refused
  CHECK_FALSE(s5);
  CHECK_THAT(why, Catch::Contains("3 connections open, all of them past their handshake"));
  s4.release();
  CHECK(limits.from("10.0.0.2") == 0);
  CHECK(limits.admit(e.first, "10.0.0.3", why));  // a place again (released at once)
  CHECK_FALSE(a.shut(50));  // established connections are never cut
}

TEST_CASE("PeerLimits: a full server evicts the oldest connection still in its handshake", "[util]") {
  PeerLimits limits({.per_peer = 10, .total = 2, .handshake = std::chrono::seconds(60), .what = "TEST"});
  SocketPair a, b, c;
  std::string why;
  auto old = limits.admit(a.first, "10.0.0.1", why);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto young = limits.admit(b.first, "10.0.0.2", why);
  auto newcomer = limits.admit(c.first, "10.0.0.3", why);
  REQUIRE(newcomer);
  CHECK(a.shut());
  CHECK(old.expired());
  CHECK_FALSE(b.shut(50));
  CHECK_FALSE(young.expired());
}

TEST_CASE("PeerLimits: the handshake deadline shuts the socket; established() and waiting() move it", "[util]") {
  PeerLimits limits({.per_peer = 10, .total = 10, .handshake = std::chrono::milliseconds(100), .what = "TEST"});
  SocketPair slow, quick;
  std::string why;
  auto s = limits.admit(slow.first, "10.0.0.1", why);
  auto q = limits.admit(quick.first, "10.0.0.2", why);
  q.established();
  CHECK(slow.shut());
  CHECK(s.expired());
  CHECK_FALSE(quick.shut(300));
  q.waiting(std::chrono::milliseconds(100));  // a kept-alive connection waiting for its next request
  CHECK(quick.shut());
}
