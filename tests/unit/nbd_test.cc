// Unit tests of lib/nbd: serve_connection driven over a socketpair by a
// hand-written client, byte for byte, against in-memory exports; and the
// request parser and error mapping.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "block/device.h"
#include "support/memory_device.h"
#include "nbd/connection.h"
#include "nbd/protocol.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/log.h"

using namespace bootfleet;
using util::load_be16;
using util::load_be32;
using util::load_be64;
using util::store_be16;
using util::store_be32;
using util::store_be64;

namespace {

using test::MemoryDevice;

constexpr uint64_t kMemSize = 1u << 20;
constexpr uint64_t kOddSize = 1000003;  // not a multiple of 512

// Exports: "mem" (read-write, one connection's own), "ro" (read-only,
// shared), "odd" (read-write, shared, an odd size). Counts opens and
// releases so tests can check every opened export is released once.
class Resolver : public nbd::ExportResolver {
 public:
  std::shared_ptr<MemoryDevice> mem = std::make_shared<MemoryDevice>(kMemSize, false, false);
  std::shared_ptr<MemoryDevice> ro = std::make_shared<MemoryDevice>(kMemSize, true, true);
  std::shared_ptr<MemoryDevice> odd = std::make_shared<MemoryDevice>(kOddSize, false, true);
  std::atomic<int> opens{0}, releases{0};

  nbd::OpenedExport open(const std::string& name) override {
    std::shared_ptr<MemoryDevice> d;
    if (name == "mem") d = mem;
    else if (name == "ro") d = ro;
    else if (name == "odd") d = odd;
    else throw util::Error("no export '" + name + "'; exports: mem, ro, odd");
    ++opens;
    return {d, "memory " + name, [this] { ++releases; }};
  }
  std::vector<std::pair<std::string, std::string>> list() override {
    return {{"mem", "memory, read-write"}, {"ro", "memory, read-only"}};
  }
};

struct OptionReply {
  uint32_t option = 0;
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct SimpleReply {
  uint32_t error = 0;
  uint64_t cookie = 0;
};

struct Chunk {
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;
  std::vector<uint8_t> payload;
};

// One client connection to serve_connection running on its own thread.
// Every receive has a deadline, so a server that waits where it should
// answer fails the test instead of hanging it.
class Client {
 public:
  explicit Client(Resolver& resolver) {
    util::set_log_enabled(false);
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) == 0);
    server_ = std::thread([this, &resolver] {
      nbd::serve_connection(fds_[1], resolver, "unit-test");
      ::shutdown(fds_[1], SHUT_RDWR);  // the client sees end of file
      returned_ = true;
    });
  }
  ~Client() {
    ::shutdown(fds_[0], SHUT_RDWR);
    server_.join();
    ::close(fds_[0]);
    ::close(fds_[1]);
    util::set_log_enabled(true);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(const std::vector<uint8_t>& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fds_[0], bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      REQUIRE(n > 0);
      done += static_cast<size_t>(n);
    }
  }
  // Exactly n bytes, or the test fails (end of file or 10 s without data).
  std::vector<uint8_t> recv(size_t n) {
    std::vector<uint8_t> out(n);
    size_t done = 0;
    while (done < n) {
      pollfd p{fds_[0], POLLIN, 0};
      int rc = ::poll(&p, 1, 10000);
      REQUIRE(rc == 1);
      ssize_t got = ::recv(fds_[0], out.data() + done, n - done, 0);
      INFO("expected " << n << " bytes, got " << done << " then " << got);
      REQUIRE(got > 0);
      done += static_cast<size_t>(got);
    }
    return out;
  }
  // True when the server closed the connection (end of file) within 10 s
  // without sending anything more.
  bool closed() {
    pollfd p{fds_[0], POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return false;
    uint8_t b;
    ssize_t got = ::recv(fds_[0], &b, 1, 0);
    if (got != 0) return false;
    server_returned_wait();
    return returned_;
  }

  // Handshake -----------------------------------------------------------
  void greeting() {
    auto g = recv(18);
    REQUIRE(load_be64(g.data()) == nbd::kNbdMagic);
    REQUIRE(load_be64(g.data() + 8) == nbd::kOptMagic);
    REQUIRE(load_be16(g.data() + 16) == (nbd::kFlagFixedNewstyle | nbd::kFlagNoZeroes));
  }
  void start(bool no_zeroes = true) {
    greeting();
    std::vector<uint8_t> f(4);
    store_be32(f.data(), nbd::kClientFixedNewstyle | (no_zeroes ? nbd::kClientNoZeroes : 0));
    send(f);
  }
  void option(uint32_t opt, const std::vector<uint8_t>& data = {}) {
    std::vector<uint8_t> h(16);
    store_be64(h.data(), nbd::kOptMagic);
    store_be32(h.data() + 8, opt);
    store_be32(h.data() + 12, static_cast<uint32_t>(data.size()));
    h.insert(h.end(), data.begin(), data.end());
    send(h);
  }
  OptionReply option_reply() {
    auto h = recv(20);
    REQUIRE(load_be64(h.data()) == nbd::kOptReplyMagic);
    OptionReply r;
    r.option = load_be32(h.data() + 8);
    r.type = load_be32(h.data() + 12);
    uint32_t len = load_be32(h.data() + 16);
    REQUIRE(len < (1u << 20));
    if (len) r.data = recv(len);
    return r;
  }
  // NBD_OPT_GO / NBD_OPT_INFO data: name, then the information requests.
  static std::vector<uint8_t> go_data(const std::string& name, const std::vector<uint16_t>& infos = {}) {
    std::vector<uint8_t> d(4 + name.size() + 2 + 2 * infos.size());
    store_be32(d.data(), static_cast<uint32_t>(name.size()));
    std::memcpy(d.data() + 4, name.data(), name.size());
    store_be16(d.data() + 4 + name.size(), static_cast<uint16_t>(infos.size()));
    for (size_t i = 0; i < infos.size(); ++i) store_be16(d.data() + 6 + name.size() + 2 * i, infos[i]);
    return d;
  }
  static std::vector<uint8_t> meta_data(const std::string& name, const std::vector<std::string>& queries) {
    std::vector<uint8_t> d(4);
    store_be32(d.data(), static_cast<uint32_t>(name.size()));
    d.insert(d.end(), name.begin(), name.end());
    size_t at = d.size();
    d.resize(at + 4);
    store_be32(d.data() + at, static_cast<uint32_t>(queries.size()));
    for (const auto& q : queries) {
      at = d.size();
      d.resize(at + 4);
      store_be32(d.data() + at, static_cast<uint32_t>(q.size()));
      d.insert(d.end(), q.begin(), q.end());
    }
    return d;
  }
  // OPT_GO that must succeed; returns (size, transmission flags).
  std::pair<uint64_t, uint16_t> go(const std::string& name) {
    option(nbd::kOptGo, go_data(name));
    auto info = option_reply();
    REQUIRE(info.type == nbd::kRepInfo);
    REQUIRE(info.data.size() == 12);
    REQUIRE(load_be16(info.data.data()) == nbd::kInfoExport);
    auto ack = option_reply();
    REQUIRE(ack.type == nbd::kRepAck);
    return {load_be64(info.data.data() + 2), load_be16(info.data.data() + 10)};
  }
  void structured() {
    option(nbd::kOptStructuredReply);
    auto r = option_reply();
    REQUIRE(r.option == nbd::kOptStructuredReply);
    REQUIRE(r.type == nbd::kRepAck);
  }

  // Transmission --------------------------------------------------------
  void request(uint16_t type, uint64_t offset, uint32_t length, uint64_t cookie, uint16_t flags = 0,
               const std::vector<uint8_t>& payload = {}, uint32_t magic = nbd::kRequestMagic) {
    std::vector<uint8_t> r(28);
    store_be32(r.data(), magic);
    store_be16(r.data() + 4, flags);
    store_be16(r.data() + 6, type);
    store_be64(r.data() + 8, cookie);
    store_be64(r.data() + 16, offset);
    store_be32(r.data() + 24, length);
    r.insert(r.end(), payload.begin(), payload.end());
    send(r);
  }
  SimpleReply simple_reply() {
    auto h = recv(16);
    REQUIRE(load_be32(h.data()) == nbd::kSimpleReplyMagic);
    return {load_be32(h.data() + 4), load_be64(h.data() + 8)};
  }
  Chunk chunk() {
    auto h = recv(20);
    REQUIRE(load_be32(h.data()) == nbd::kStructuredReplyMagic);
    Chunk c;
    c.flags = load_be16(h.data() + 4);
    c.type = load_be16(h.data() + 6);
    c.cookie = load_be64(h.data() + 8);
    uint32_t len = load_be32(h.data() + 16);
    REQUIRE(len <= nbd::kMaxPayload + 8);
    if (len) c.payload = recv(len);
    return c;
  }
  // A request that must succeed with a simple reply.
  void simple_ok(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0,
                 const std::vector<uint8_t>& payload = {}) {
    request(type, offset, length, 77, flags, payload);
    auto r = simple_reply();
    CHECK(r.error == 0);
    CHECK(r.cookie == 77);
  }
  std::vector<uint8_t> simple_read(uint64_t offset, uint32_t length) {
    request(nbd::kCmdRead, offset, length, 5);
    auto r = simple_reply();
    REQUIRE(r.error == 0);
    REQUIRE(r.cookie == 5);
    return recv(length);
  }
  uint32_t simple_error(uint16_t type, uint64_t offset, uint32_t length, uint16_t flags = 0,
                        const std::vector<uint8_t>& payload = {}) {
    request(type, offset, length, 99, flags, payload);
    auto r = simple_reply();
    CHECK(r.cookie == 99);
    return r.error;
  }
  void disconnect() { request(nbd::kCmdDisc, 0, 0, 0); }

 private:
  void server_returned_wait() {
    for (int i = 0; i < 1000 && !returned_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  int fds_[2] = {-1, -1};
  std::thread server_;
  std::atomic<bool> returned_{false};
};

std::string text(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

}  // namespace

TEST_CASE("nbd: the greeting is NBDMAGIC, IHAVEOPT and flags 3", "[nbd]") {
  Resolver res;
  Client c(res);
  auto g = c.recv(18);
  CHECK(std::memcmp(g.data(), "NBDMAGIC", 8) == 0);
  CHECK(std::memcmp(g.data() + 8, "IHAVEOPT", 8) == 0);
  CHECK(load_be16(g.data() + 16) == 3);  // FIXED_NEWSTYLE | NO_ZEROES
}

TEST_CASE("nbd: a client without the fixed-newstyle flag, or with unknown flags, is closed", "[nbd]") {
  uint32_t flags = GENERATE(0u, nbd::kClientNoZeroes, nbd::kClientFixedNewstyle | 0x100u);
  Resolver res;
  Client c(res);
  c.greeting();
  std::vector<uint8_t> f(4);
  store_be32(f.data(), flags);
  c.send(f);
  CHECK(c.closed());
}

TEST_CASE("nbd: OPT_GO with NBD_INFO_BLOCK_SIZE gets the export, the block sizes and an ACK", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.option(nbd::kOptGo, Client::go_data("mem", {nbd::kInfoBlockSize}));
  auto info = c.option_reply();
  CHECK(info.option == nbd::kOptGo);
  REQUIRE(info.type == nbd::kRepInfo);
  REQUIRE(info.data.size() == 12);
  CHECK(load_be16(info.data.data()) == nbd::kInfoExport);
  CHECK(load_be64(info.data.data() + 2) == kMemSize);
  uint16_t flags = load_be16(info.data.data() + 10);
  CHECK((flags & nbd::kTxHasFlags));
  CHECK((flags & nbd::kTxSendFlush));
  CHECK((flags & nbd::kTxSendFua));
  CHECK((flags & nbd::kTxSendTrim));
  CHECK((flags & nbd::kTxSendWriteZeroes));
  CHECK((flags & nbd::kTxSendCache));
  CHECK_FALSE((flags & nbd::kTxReadOnly));
  CHECK_FALSE((flags & nbd::kTxCanMultiConn));  // "mem" is one connection's own
  CHECK_FALSE((flags & nbd::kTxSendDf));        // no structured replies negotiated

  auto bs = c.option_reply();
  CHECK(bs.option == nbd::kOptGo);
  REQUIRE(bs.type == nbd::kRepInfo);
  REQUIRE(bs.data.size() == 14);
  CHECK(load_be16(bs.data.data()) == nbd::kInfoBlockSize);
  CHECK(load_be32(bs.data.data() + 2) == 512);
  CHECK(load_be32(bs.data.data() + 6) == 4096);
  CHECK(load_be32(bs.data.data() + 10) == (32u << 20));

  auto ack = c.option_reply();
  CHECK(ack.option == nbd::kOptGo);
  CHECK(ack.type == nbd::kRepAck);
  CHECK(ack.data.empty());
  // Transmission has begun.
  CHECK(c.simple_read(0, 512) == res.mem->bytes(0, 512));
  CHECK(res.opens == 1);
  c.disconnect();
  CHECK(c.closed());
  CHECK(res.releases == 1);
  CHECK(res.mem->flushes == 1);  // DISC flushes
}

TEST_CASE("nbd: OPT_GO also answers NBD_INFO_NAME and NBD_INFO_DESCRIPTION", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.option(nbd::kOptGo, Client::go_data("ro", {nbd::kInfoName, nbd::kInfoDescription, 0x7777}));
  auto info = c.option_reply();
  REQUIRE(info.type == nbd::kRepInfo);
  REQUIRE(info.data.size() == 12);
  uint16_t flags = load_be16(info.data.data() + 10);
  CHECK((flags & nbd::kTxReadOnly));
  CHECK((flags & nbd::kTxCanMultiConn));  // read-only and shared
  CHECK_FALSE((flags & nbd::kTxSendTrim));
  CHECK_FALSE((flags & nbd::kTxSendWriteZeroes));
  auto name = c.option_reply();
  REQUIRE(name.type == nbd::kRepInfo);
  CHECK(load_be16(name.data.data()) == nbd::kInfoName);
  CHECK(text({name.data.begin() + 2, name.data.end()}) == "ro");
  auto desc = c.option_reply();
  REQUIRE(desc.type == nbd::kRepInfo);
  CHECK(load_be16(desc.data.data()) == nbd::kInfoDescription);
  CHECK(text({desc.data.begin() + 2, desc.data.end()}) == "memory ro");
  CHECK(c.option_reply().type == nbd::kRepAck);  // the unknown request 0x7777 is ignored
}

TEST_CASE("nbd: OPT_INFO describes an export and negotiation goes on", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.option(nbd::kOptInfo, Client::go_data("odd"));
  auto info = c.option_reply();
  CHECK(info.option == nbd::kOptInfo);
  REQUIRE(info.type == nbd::kRepInfo);
  CHECK(load_be64(info.data.data() + 2) == kOddSize);
  CHECK(c.option_reply().type == nbd::kRepAck);
  CHECK(res.opens == 1);
  CHECK(res.releases == 1);  // INFO lets go of the export at once
  auto [size, flags] = c.go("odd");
  CHECK(size == kOddSize);
  CHECK((flags & nbd::kTxCanMultiConn));
  CHECK(res.opens == 2);
  CHECK(res.releases == 1);
}

TEST_CASE("nbd: an unknown option gets NBD_REP_ERR_UNSUP and negotiation goes on", "[nbd]") {
  uint32_t opt = GENERATE(uint32_t{42}, uint32_t{nbd::kOptStartTls}, uint32_t{0x12345678});
  Resolver res;
  Client c(res);
  c.start();
  c.option(opt, {1, 2, 3});
  auto r = c.option_reply();
  CHECK(r.option == opt);
  CHECK(r.type == nbd::kRepErrUnsup);
  // Still talking.
  auto [size, flags] = c.go("mem");
  CHECK(size == kMemSize);
}

TEST_CASE("nbd: OPT_LIST lists every export, then ACK", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.option(nbd::kOptList);
  std::map<std::string, std::string> listed;
  while (true) {
    auto r = c.option_reply();
    CHECK(r.option == nbd::kOptList);
    if (r.type == nbd::kRepAck) break;
    REQUIRE(r.type == nbd::kRepServer);
    REQUIRE(r.data.size() >= 4);
    uint32_t n = load_be32(r.data.data());
    REQUIRE(4 + n <= r.data.size());
    listed[text({r.data.begin() + 4, r.data.begin() + 4 + n})] = text({r.data.begin() + 4 + n, r.data.end()});
  }
  CHECK(listed == std::map<std::string, std::string>{{"mem", "memory, read-write"}, {"ro", "memory, read-only"}});
  // With data it is invalid.
  c.option(nbd::kOptList, {0});
  CHECK(c.option_reply().type == nbd::kRepErrInvalid);
  c.go("mem");
}

TEST_CASE("nbd: OPT_GO of an unknown export gets NBD_REP_ERR_UNKNOWN with a message", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.option(nbd::kOptGo, Client::go_data("nosuch"));
  auto r = c.option_reply();
  CHECK(r.option == nbd::kOptGo);
  CHECK(r.type == nbd::kRepErrUnknown);
  CHECK(text(r.data) == "no export 'nosuch'; exports: mem, ro, odd");
  CHECK(res.opens == 0);
  // The client may try again.
  c.go("ro");
}

TEST_CASE("nbd: malformed OPT_GO data gets NBD_REP_ERR_INVALID", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  auto good = Client::go_data("mem", {nbd::kInfoBlockSize});
  std::vector<uint8_t> bad;
  SECTION("too short") { bad = {0, 0, 0}; }
  SECTION("name length past the data") {
    bad = good;
    store_be32(bad.data(), 1000);
  }
  SECTION("request count does not match") {
    bad = good;
    store_be16(bad.data() + 4 + 3, 5);
  }
  c.option(nbd::kOptGo, bad);
  CHECK(c.option_reply().type == nbd::kRepErrInvalid);
  CHECK(res.opens == 0);
  c.go("mem");
}

TEST_CASE("nbd: OPT_EXPORT_NAME of an unknown export closes the connection", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  std::string name = "nosuch";
  c.option(nbd::kOptExportName, {name.begin(), name.end()});
  CHECK(c.closed());  // nothing sent back: the protocol has no error reply here
  CHECK(res.opens == 0);
}

TEST_CASE("nbd: OPT_EXPORT_NAME replies with 10 bytes under NO_ZEROES, 134 without", "[nbd]") {
  bool no_zeroes = GENERATE(true, false);
  Resolver res;
  Client c(res);
  c.start(no_zeroes);
  std::string name = "mem";
  c.option(nbd::kOptExportName, {name.begin(), name.end()});
  auto r = c.recv(no_zeroes ? 10 : 134);
  CHECK(load_be64(r.data()) == kMemSize);
  uint16_t flags = load_be16(r.data() + 8);
  CHECK((flags & nbd::kTxHasFlags));
  CHECK_FALSE((flags & nbd::kTxReadOnly));
  if (!no_zeroes) CHECK(std::all_of(r.begin() + 10, r.end(), [](uint8_t b) { return b == 0; }));
  // Nothing more came: the next bytes are the reply to our first request.
  CHECK(c.simple_read(4096, 1024) == res.mem->bytes(4096, 1024));
}

TEST_CASE("nbd: OPT_ABORT is acknowledged and the connection closed", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.option(nbd::kOptAbort);
  auto r = c.option_reply();
  CHECK(r.option == nbd::kOptAbort);
  CHECK(r.type == nbd::kRepAck);
  CHECK(c.closed());
}

TEST_CASE("nbd: oversized options are refused, or close the connection", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  SECTION("an option over 64 KiB is read and refused with ERR_TOO_BIG") {
    c.option(nbd::kOptGo, std::vector<uint8_t>(nbd::kMaxOptionLength + 1));
    auto r = c.option_reply();
    CHECK(r.type == nbd::kRepErrTooBig);
    c.go("mem");
  }
  SECTION("an option announcing 4 GiB closes the connection without reading it") {
    std::vector<uint8_t> h(16);
    store_be64(h.data(), nbd::kOptMagic);
    store_be32(h.data() + 8, nbd::kOptGo);
    store_be32(h.data() + 12, 0xffffffffu);
    c.send(h);
    CHECK(c.closed());
  }
  SECTION("a bad option magic closes the connection") {
    std::vector<uint8_t> h(16);
    store_be64(h.data(), 0x0102030405060708ull);
    c.send(h);
    CHECK(c.closed());
  }
}

TEST_CASE("nbd: simple replies to READ, WRITE, FLUSH, TRIM, WRITE_ZEROES, CACHE", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.go("mem");
  CHECK(c.simple_read(0, 4096) == res.mem->bytes(0, 4096));
  CHECK(c.simple_read(kMemSize - 1, 1) == res.mem->bytes(kMemSize - 1, 1));  // the very last byte

  std::vector<uint8_t> x(3000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i ^ 0x5A);
  c.simple_ok(nbd::kCmdWrite, 1000, 3000, 0, x);
  CHECK(res.mem->bytes(1000, 3000) == x);
  CHECK(res.mem->fua_writes == 0);
  c.simple_ok(nbd::kCmdWrite, 8192, 3000, nbd::kCmdFlagFua, x);
  CHECK(res.mem->fua_writes == 1);
  CHECK(c.simple_read(1000, 3000) == x);

  c.simple_ok(nbd::kCmdFlush, 0, 0);
  CHECK(res.mem->flushes == 1);
  c.simple_ok(nbd::kCmdTrim, 1024, 1024);
  CHECK(res.mem->trims == 1);
  c.simple_ok(nbd::kCmdWriteZeroes, 8192, 4096, nbd::kCmdFlagNoHole);
  CHECK(res.mem->zeroings == 1);
  CHECK(c.simple_read(1024, 1024) == std::vector<uint8_t>(1024, 0));
  CHECK(c.simple_read(8192, 4096) == std::vector<uint8_t>(4096, 0));
  c.simple_ok(nbd::kCmdCache, 0, 65536);
  // A zero-length write is fine and writes nothing.
  int writes = res.mem->writes;
  c.simple_ok(nbd::kCmdWrite, 0, 0);
  CHECK(res.mem->writes == writes);
  c.disconnect();
  CHECK(c.closed());
}

TEST_CASE("nbd: structured READ replies are one OFFSET_DATA chunk with DONE", "[nbd]") {
  uint32_t len = GENERATE(1u, 512u, 65536u + 3u, 900000u);
  Resolver res;
  Client c(res);
  c.start();
  c.structured();
  auto [size, flags] = c.go("mem");
  CHECK(size == kMemSize);
  CHECK((flags & nbd::kTxSendDf));
  uint64_t offset = len == 1 ? kMemSize - 1 : 512 + 7;
  c.request(nbd::kCmdRead, offset, len, 0xABCDEF0123456789ull, nbd::kCmdFlagDf);
  auto ch = c.chunk();
  CHECK(ch.cookie == 0xABCDEF0123456789ull);
  CHECK(ch.flags == nbd::kReplyFlagDone);
  CHECK(ch.type == nbd::kReplyOffsetData);
  REQUIRE(ch.payload.size() == 8 + len);
  CHECK(load_be64(ch.payload.data()) == offset);
  CHECK(std::vector<uint8_t>(ch.payload.begin() + 8, ch.payload.end()) == res.mem->bytes(offset, len));
  // Other commands get a NONE chunk with DONE.
  c.request(nbd::kCmdFlush, 0, 0, 3);
  auto ok = c.chunk();
  CHECK(ok.type == nbd::kReplyNone);
  CHECK(ok.flags == nbd::kReplyFlagDone);
  CHECK(ok.cookie == 3);
  CHECK(ok.payload.empty());
}

TEST_CASE("nbd: a read that waits for the disk does not hold up the cached reads behind it", "[nbd]") {
  Resolver res;
  res.mem->cached_below = kMemSize / 2;
  res.mem->hold_slow_reads = true;
  Client c(res);
  c.start();
  c.structured();
  c.go("mem");
  // One read of the uncached half, then cached ones, all in flight at once.
  c.request(nbd::kCmdRead, kMemSize - 8192, 4096, 100);
  for (uint64_t i = 0; i < 8; ++i) c.request(nbd::kCmdRead, i * 4096, 4096, i);
  for (uint64_t i = 0; i < 8; ++i) {
    auto ch = c.chunk();
    CHECK(ch.cookie == i);  // cached reads are answered in order, while the slow one still waits
    REQUIRE(ch.payload.size() == 8 + 4096);
    CHECK(std::vector<uint8_t>(ch.payload.begin() + 8, ch.payload.end()) == res.mem->bytes(i * 4096, 4096));
  }
  // The slow read is on a worker (it may not have started yet), still held.
  for (int i = 0; i < 5000 && res.mem->slow_reads == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(res.mem->slow_reads == 1);
  res.mem->hold_slow_reads = false;
  auto slow = c.chunk();
  CHECK(slow.cookie == 100);
  REQUIRE(slow.payload.size() == 8 + 4096);
  CHECK(std::vector<uint8_t>(slow.payload.begin() + 8, slow.payload.end()) == res.mem->bytes(kMemSize - 8192, 4096));
  // A disconnect with a slow read in flight still answers it first.
  res.mem->hold_slow_reads = true;
  c.request(nbd::kCmdRead, kMemSize - 4096, 4096, 101);
  c.disconnect();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  res.mem->hold_slow_reads = false;
  auto last = c.chunk();
  CHECK(last.cookie == 101);
  CHECK(last.payload.size() == 8 + 4096);
  CHECK(c.closed());
}

TEST_CASE("nbd: a read past the end gets EINVAL", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  SECTION("simple reply") {
    c.go("mem");
    CHECK(c.simple_error(nbd::kCmdRead, kMemSize - 512, 1024) == nbd::kErrInval);
    CHECK(c.simple_error(nbd::kCmdRead, kMemSize, 1) == nbd::kErrInval);
    CHECK(c.simple_error(nbd::kCmdRead, ~uint64_t{0} - 10, 512) == nbd::kErrInval);  // wraps past 2^64
    CHECK(c.simple_error(nbd::kCmdRead, 0, 0) == nbd::kErrInval);
    CHECK(c.simple_error(nbd::kCmdRead, 0, nbd::kMaxPayload + 1) == nbd::kErrInval);
    CHECK(c.simple_read(0, 512) == res.mem->bytes(0, 512));  // still in step
  }
  SECTION("odd-sized export: the last partial sector reads, one byte more does not") {
    c.go("odd");
    CHECK(c.simple_read(kOddSize - 300, 300) == res.odd->bytes(kOddSize - 300, 300));
    CHECK(c.simple_error(nbd::kCmdRead, kOddSize - 300, 301) == nbd::kErrInval);
  }
  SECTION("structured reply: an error chunk with DONE and a message") {
    c.structured();
    c.go("mem");
    c.request(nbd::kCmdRead, kMemSize - 512, 1024, 42);
    auto ch = c.chunk();
    CHECK(ch.cookie == 42);
    CHECK(ch.type == nbd::kReplyError);
    CHECK(ch.flags == nbd::kReplyFlagDone);
    REQUIRE(ch.payload.size() >= 6);
    CHECK(load_be32(ch.payload.data()) == nbd::kErrInval);
    uint16_t mlen = load_be16(ch.payload.data() + 4);
    CHECK(ch.payload.size() == 6u + mlen);
    CHECK(mlen > 0);
    c.request(nbd::kCmdRead, 0, 512, 43);  // still in step
    auto next = c.chunk();
    CHECK(next.cookie == 43);
    CHECK(next.type == nbd::kReplyOffsetData);
  }
}

TEST_CASE("nbd: writes to a read-only export get EPERM", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.go("ro");
  auto before = res.ro->bytes(0, 4096);
  CHECK(c.simple_error(nbd::kCmdWrite, 0, 4096, 0, std::vector<uint8_t>(4096, 1)) == nbd::kErrPerm);
  CHECK(c.simple_error(nbd::kCmdTrim, 0, 4096) == nbd::kErrPerm);
  CHECK(c.simple_error(nbd::kCmdWriteZeroes, 0, 4096) == nbd::kErrPerm);
  CHECK(res.ro->bytes(0, 4096) == before);
  CHECK(res.ro->writes == 0);
  // The refused write's payload was consumed: the next request is in step.
  CHECK(c.simple_read(0, 4096) == before);
}

TEST_CASE("nbd: writes past the end get ENOSPC, an oversized write EINVAL", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.go("mem");
  CHECK(c.simple_error(nbd::kCmdWrite, kMemSize - 512, 1024, 0, std::vector<uint8_t>(1024, 1)) == nbd::kErrNoSpc);
  CHECK(c.simple_error(nbd::kCmdWriteZeroes, kMemSize, 512) == nbd::kErrNoSpc);
  CHECK(res.mem->writes == 0);
  CHECK(res.mem->zeroings == 0);
  // Over 32 MiB (and under 64 MiB): read, dropped, refused.
  CHECK(c.simple_error(nbd::kCmdWrite, 0, nbd::kMaxPayload + 512, 0, std::vector<uint8_t>(nbd::kMaxPayload + 512, 1)) ==
        nbd::kErrInval);
  CHECK(res.mem->writes == 0);
  CHECK(c.simple_read(0, 512) == res.mem->bytes(0, 512));
}

TEST_CASE("nbd: an unknown command gets EINVAL", "[nbd]") {
  uint16_t type = GENERATE(uint16_t{8}, uint16_t{99}, uint16_t{0xffff});
  Resolver res;
  Client c(res);
  c.start();
  c.go("mem");
  CHECK(c.simple_error(type, 0, 512) == nbd::kErrInval);
  CHECK(c.simple_read(0, 512) == res.mem->bytes(0, 512));
}

TEST_CASE("nbd: meta contexts offer base:allocation", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  SECTION("SET before structured replies is invalid") {
    c.option(nbd::kOptSetMetaContext, Client::meta_data("mem", {"base:allocation"}));
    CHECK(c.option_reply().type == nbd::kRepErrInvalid);
  }
  SECTION("LIST with no query lists base:allocation") {
    c.option(nbd::kOptListMetaContext, Client::meta_data("mem", {}));
    auto r = c.option_reply();
    REQUIRE(r.type == nbd::kRepMetaContext);
    CHECK(load_be32(r.data.data()) == nbd::kBaseAllocationContextId);
    CHECK(text({r.data.begin() + 4, r.data.end()}) == "base:allocation");
    CHECK(c.option_reply().type == nbd::kRepAck);
  }
  SECTION("SET of an unknown context selects nothing") {
    c.structured();
    c.option(nbd::kOptSetMetaContext, Client::meta_data("mem", {"qemu:dirty-bitmap:x"}));
    CHECK(c.option_reply().type == nbd::kRepAck);  // no NBD_REP_META_CONTEXT before it
    c.go("mem");
    c.request(nbd::kCmdBlockStatus, 0, 4096, 1);
    auto ch = c.chunk();
    CHECK(ch.type == nbd::kReplyError);
    REQUIRE(ch.payload.size() >= 4);
    CHECK(load_be32(ch.payload.data()) == nbd::kErrInval);
  }
  SECTION("an unknown export") {
    c.structured();
    c.option(nbd::kOptSetMetaContext, Client::meta_data("nosuch", {"base:allocation"}));
    CHECK(c.option_reply().type == nbd::kRepErrUnknown);
  }
}

TEST_CASE("nbd: BLOCK_STATUS never passes the range asked for, one descriptor with REQ_ONE", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.structured();
  c.option(nbd::kOptSetMetaContext, Client::meta_data("mem", {"base:allocation"}));
  auto ctx = c.option_reply();
  REQUIRE(ctx.type == nbd::kRepMetaContext);
  uint32_t id = load_be32(ctx.data.data());
  REQUIRE(c.option_reply().type == nbd::kRepAck);
  c.go("mem");

  // The device reports 64 KiB extents: data, zero, data … A range from the
  // middle of one to the middle of another.
  const uint64_t off = 65536 - 1000;
  const uint32_t len = 3 * 65536;
  auto descriptors = [&](uint16_t flags) {
    c.request(nbd::kCmdBlockStatus, off, len, 11, flags);
    auto ch = c.chunk();
    REQUIRE(ch.type == nbd::kReplyBlockStatus);
    CHECK(ch.flags == nbd::kReplyFlagDone);
    CHECK(ch.cookie == 11);
    REQUIRE(ch.payload.size() >= 12);
    REQUIRE((ch.payload.size() - 4) % 8 == 0);
    CHECK(load_be32(ch.payload.data()) == id);
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (size_t at = 4; at < ch.payload.size(); at += 8)
      out.emplace_back(load_be32(ch.payload.data() + at), load_be32(ch.payload.data() + at + 4));
    return out;
  };
  const uint32_t zero = nbd::kStateHole | nbd::kStateZero;
  auto all = descriptors(0);
  CHECK(all == std::vector<std::pair<uint32_t, uint32_t>>{{1000, 0}, {65536, zero}, {65536, 0}, {65536 - 1000, zero}});
  uint64_t total = 0;
  for (auto& d : all) total += d.first;
  CHECK(total == len);

  auto one = descriptors(nbd::kCmdFlagReqOne);
  REQUIRE(one.size() == 1);
  CHECK(one[0] == std::pair<uint32_t, uint32_t>{1000, 0});

  // A range inside one extent: one descriptor of exactly that length.
  c.request(nbd::kCmdBlockStatus, 70000, 100, 12, nbd::kCmdFlagReqOne);
  auto ch = c.chunk();
  REQUIRE(ch.payload.size() == 12);
  CHECK(load_be32(ch.payload.data() + 4) == 100);
  CHECK(load_be32(ch.payload.data() + 8) == zero);

  // Past the end: EINVAL.
  c.request(nbd::kCmdBlockStatus, kMemSize - 100, 200, 13);
  auto err = c.chunk();
  CHECK(err.type == nbd::kReplyError);
  REQUIRE(err.payload.size() >= 4);
  CHECK(load_be32(err.payload.data()) == nbd::kErrInval);
}

TEST_CASE("nbd: BLOCK_STATUS without a negotiated context gets EINVAL", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.structured();
  SECTION("no context set") {}
  SECTION("context set for another export") {
    c.option(nbd::kOptSetMetaContext, Client::meta_data("ro", {"base:allocation"}));
    REQUIRE(c.option_reply().type == nbd::kRepMetaContext);
    REQUIRE(c.option_reply().type == nbd::kRepAck);
  }
  c.go("mem");
  c.request(nbd::kCmdBlockStatus, 0, 4096, 1);
  auto ch = c.chunk();
  CHECK(ch.type == nbd::kReplyError);
  REQUIRE(ch.payload.size() >= 4);
  CHECK(load_be32(ch.payload.data()) == nbd::kErrInval);
}

TEST_CASE("nbd: a bad request magic closes the connection", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.go("mem");
  c.request(nbd::kCmdRead, 0, 512, 1, 0, {}, 0x12345678u);
  CHECK(c.closed());
  CHECK(res.releases == 1);
}

TEST_CASE("nbd: a write announcing 0xffffffff bytes closes the connection without reading it", "[nbd]") {
  Resolver res;
  Client c(res);
  c.start();
  c.go("mem");
  // No payload follows: a server that tried to read (or allocate and read)
  // 4 GiB would wait here, and closed() would time out.
  c.request(nbd::kCmdWrite, 0, 0xffffffffu, 1);
  CHECK(c.closed());
  CHECK(res.mem->writes == 0);
  CHECK(res.releases == 1);
}

TEST_CASE("nbd: a client that goes away mid-reply does not hurt the server", "[nbd]") {
  Resolver res;
  {
    Client c(res);
    c.start();
    c.go("mem");
    // Ask for more than the socket buffers hold and leave without reading.
    c.request(nbd::kCmdRead, 0, static_cast<uint32_t>(kMemSize), 1);
  }  // ~Client shuts the socket down and joins the server thread
  CHECK(res.releases == 1);
  // The next client is served as usual.
  Client d(res);
  d.start();
  d.go("mem");
  CHECK(d.simple_read(0, 512) == res.mem->bytes(0, 512));
}

TEST_CASE("nbd: parse_request decodes a request header", "[nbd]") {
  uint8_t raw[nbd::kRequestSize];
  store_be32(raw, nbd::kRequestMagic);
  store_be16(raw + 4, nbd::kCmdFlagFua | nbd::kCmdFlagReqOne);
  store_be16(raw + 6, nbd::kCmdWrite);
  store_be64(raw + 8, 0x0102030405060708ull);
  store_be64(raw + 16, 0x1122334455667788ull);
  store_be32(raw + 24, 0xdeadbeefu);
  nbd::Request r;
  REQUIRE(nbd::parse_request(raw, r));
  CHECK(r.flags == (nbd::kCmdFlagFua | nbd::kCmdFlagReqOne));
  CHECK(r.type == nbd::kCmdWrite);
  CHECK(r.cookie == 0x0102030405060708ull);
  CHECK(r.offset == 0x1122334455667788ull);
  CHECK(r.length == 0xdeadbeefu);
  CHECK(nbd::kRequestSize == 28);

  nbd::Request untouched;
  untouched.length = 7;
  store_be32(raw, nbd::kSimpleReplyMagic);
  CHECK_FALSE(nbd::parse_request(raw, untouched));
  raw[0] = 0x25;
  raw[3] = 0x14;  // one bit off the request magic
  CHECK_FALSE(nbd::parse_request(raw, untouched));
}

TEST_CASE("nbd: to_nbd_error maps errno values to the protocol's", "[nbd]") {
  CHECK(nbd::to_nbd_error(EPERM) == 1);
  CHECK(nbd::to_nbd_error(EROFS) == 1);
  CHECK(nbd::to_nbd_error(EIO) == 5);
  CHECK(nbd::to_nbd_error(ENOMEM) == 12);
  CHECK(nbd::to_nbd_error(EINVAL) == 22);
  CHECK(nbd::to_nbd_error(ENOSPC) == 28);
  CHECK(nbd::to_nbd_error(EDQUOT) == 28);
  CHECK(nbd::to_nbd_error(EFBIG) == 28);
  CHECK(nbd::to_nbd_error(EOVERFLOW) == 75);
  CHECK(nbd::to_nbd_error(ENOTSUP) == 95);
  CHECK(nbd::to_nbd_error(ESHUTDOWN) == 108);
  // Anything else is an I/O error.
  CHECK(nbd::to_nbd_error(ENOENT) == 5);
  CHECK(nbd::to_nbd_error(EBADF) == 5);
  CHECK(nbd::to_nbd_error(12345) == 5);
}
