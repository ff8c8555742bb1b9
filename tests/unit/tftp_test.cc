// Unit tests of lib/tftp: the packet parser and builders, option
// negotiation, file-name normalization, and a server on 127.0.0.1 driven by
// a hand-written client (virtual files, traversal, duplicate ACKs).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <fstream>
#include <string>
#include <vector>

#include "tftp/packet.h"
#include "tftp/root.h"
#include "tftp/server.h"
#include "util/bytes.h"

using namespace bootfleet;
using namespace bootfleet::tftp;

namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// "\x00\x01" + the rest: opcode 1 and NUL-separated fields.
std::vector<uint8_t> packet(uint16_t opcode, const std::string& rest) {
  // Built as a string: GCC 12 warns (falsely) on vector::insert after resize.
  std::string all;
  all += static_cast<char>(opcode >> 8);
  all += static_cast<char>(opcode & 0xff);
  all += rest;
  return bytes(all);
}

std::string error_of(const Packet& p) {
  auto* e = std::get_if<ParseError>(&p);
  return e ? e->message : "";
}

}  // namespace

TEST_CASE("RRQ with options parses, names lower-cased", "[tftp]") {
  using namespace std::string_literals;
  auto p = parse_packet(packet(1, "undionly.kpxe\0OCTET\0BlkSize\0001468\0tsize\0000\0windowsize\0004\0"s));
  auto* r = std::get_if<Request>(&p);
  REQUIRE(r);
  CHECK(r->opcode == Opcode::rrq);
  CHECK(r->filename == "undionly.kpxe");
  CHECK(r->mode == "octet");
  REQUIRE(r->options.size() == 3);
  CHECK(r->options[0] == std::pair<std::string, std::string>{"blksize", "1468"});
  CHECK(r->options[1] == std::pair<std::string, std::string>{"tsize", "0"});
  CHECK(r->options[2] == std::pair<std::string, std::string>{"windowsize", "4"});
}

TEST_CASE("build_request and parse_packet round-trip", "[tftp]") {
  Request r{Opcode::wrq, "dir/file.bin", "netascii", {{"timeout", "3"}}};
  auto p = parse_packet(build_request(r));
  auto* back = std::get_if<Request>(&p);
  REQUIRE(back);
  CHECK(back->opcode == Opcode::wrq);
  CHECK(back->filename == r.filename);
  CHECK(back->mode == r.mode);
  CHECK(back->options == r.options);

  auto d = parse_packet(build_data(65535, bytes("abc")));
  REQUIRE(std::get_if<Data>(&d));
  CHECK(std::get<Data>(d).block == 65535);
  CHECK(std::get<Data>(d).payload == bytes("abc"));
  auto a = parse_packet(build_ack(7));
  REQUIRE(std::get_if<Ack>(&a));
  CHECK(std::get<Ack>(a).block == 7);
  auto e = parse_packet(build_error(ErrorCode::unknown_tid, "who?"));
  REQUIRE(std::get_if<ErrorPacket>(&e));
  CHECK(std::get<ErrorPacket>(e).code == 5);
  CHECK(std::get<ErrorPacket>(e).message == "who?");
  auto o = parse_packet(build_oack({{"blksize", "1468"}, {"tsize", "74213"}}));
  REQUIRE(std::get_if<OptionAck>(&o));
  CHECK(std::get<OptionAck>(o).options.size() == 2);
}

TEST_CASE("malformed packets give a clear error, never a crash", "[tftp]") {
  using namespace std::string_literals;
  CHECK_THAT(error_of(parse_packet(std::vector<uint8_t>{})), Catch::Contains("no opcode"));
  CHECK_THAT(error_of(parse_packet(std::vector<uint8_t>{0})), Catch::Contains("no opcode"));
  CHECK_THAT(error_of(parse_packet(packet(1, "file-without-nul"))), Catch::Contains("file name without a NUL"));
  CHECK_THAT(error_of(parse_packet(packet(1, "\0octet\0"s))), Catch::Contains("empty file name"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0"s))), Catch::Contains("mode missing"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0octet"s))), Catch::Contains("mode missing"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0\0"s))), Catch::Contains("empty mode"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0octet\0blksize\0"s))), Catch::Contains("odd option list"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0octet\0blksize\0001024"s))), Catch::Contains("odd option list"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0octet\0blksize"s))), Catch::Contains("without a NUL"));
  CHECK_THAT(error_of(parse_packet(packet(1, "f\0octet\0\0001024\0"s))), Catch::Contains("empty option name"));
  CHECK_THAT(error_of(parse_packet(packet(0, "x"))), Catch::Contains("unknown opcode 0"));
  CHECK_THAT(error_of(parse_packet(packet(7, ""))), Catch::Contains("unknown opcode 7"));
  CHECK_THAT(error_of(parse_packet(packet(0xffff, ""))), Catch::Contains("unknown opcode 65535"));
  CHECK_THAT(error_of(parse_packet(packet(3, "x"))), Catch::Contains("DATA: no block number"));
  CHECK_THAT(error_of(parse_packet(packet(4, ""))), Catch::Contains("ACK: no block number"));
  CHECK_THAT(error_of(parse_packet(packet(5, "\0"s))), Catch::Contains("ERROR: no error code"));
  CHECK_THAT(error_of(parse_packet(packet(6, "blksize\0"s))), Catch::Contains("OACK"));
  std::vector<uint8_t> huge_data = build_data(1, std::vector<uint8_t>(65465, 1));
  CHECK_THAT(error_of(parse_packet(huge_data)), Catch::Contains("larger than 65464"));
}

TEST_CASE("lenient where real peers are sloppy", "[tftp]") {
  using namespace std::string_literals;
  // Zero padding after the options (some PXE ROMs).
  auto p = parse_packet(packet(1, "f\0octet\0tsize\0000\0\0\0\0"s));
  REQUIRE(std::get_if<Request>(&p));
  CHECK(std::get<Request>(p).options.size() == 1);
  // An ERROR without its terminator, an ACK with trailing bytes.
  auto e = parse_packet(packet(5, "\0\1no nul"s));
  REQUIRE(std::get_if<ErrorPacket>(&e));
  CHECK(std::get<ErrorPacket>(e).message == "no nul");
  auto a = parse_packet(packet(4, "\0\2xyz"s));
  REQUIRE(std::get_if<Ack>(&a));
  CHECK(std::get<Ack>(a).block == 2);
}

TEST_CASE("negotiate applies RFC 2348, 2349 and 7440 within limits", "[tftp]") {
  Limits limits;  // blksize 1468, windowsize 64
  auto n = negotiate({{"blksize", "1024"}, {"tsize", "0"}, {"timeout", "3"}, {"windowsize", "8"}}, limits, 74213);
  CHECK(n.params.blksize == 1024);
  CHECK(n.params.windowsize == 8);
  CHECK(n.params.timeout_seconds == 3);
  CHECK(n.oack == OptionList{{"blksize", "1024"}, {"tsize", "74213"}, {"timeout", "3"}, {"windowsize", "8"}});
  CHECK(n.ignored.empty());

  SECTION("values above the limits are lowered") {
    auto big = negotiate({{"blksize", "65464"}, {"windowsize", "65535"}}, limits, 1);
    CHECK(big.params.blksize == 1468);
    CHECK(big.params.windowsize == 64);
    CHECK(big.oack == OptionList{{"blksize", "1468"}, {"windowsize", "64"}});
    auto over = negotiate({{"blksize", "100000"}}, limits, 1);
    CHECK(over.params.blksize == 1468);
  }
  SECTION("invalid values are ignored with a reason") {
    auto bad = negotiate({{"blksize", "7"},
                          {"windowsize", "0"},
                          {"timeout", "0"},
                          {"tsize", "abc"},
                          {"blksize", "99999999999999999999"},
                          {"multicast", ""}},
                         limits, 1);
    CHECK(bad.oack.empty());
    CHECK(bad.params.blksize == 512);
    CHECK(bad.params.windowsize == 1);
    CHECK(bad.params.timeout_seconds == 0);
    REQUIRE(bad.ignored.size() == 6);
    CHECK_THAT(bad.ignored[0], Catch::Contains("blksize 7: out of range (expected 8.."));
    CHECK_THAT(bad.ignored[1], Catch::Contains("windowsize 0: out of range"));
    CHECK_THAT(bad.ignored[2], Catch::Contains("timeout 0: out of range (expected 1..5)"));
    CHECK_THAT(bad.ignored[3], Catch::Contains("not a decimal number"));
    CHECK_THAT(bad.ignored[4], Catch::Contains("given twice"));
    CHECK_THAT(bad.ignored[5], Catch::Contains("multicast: unknown option"));
  }
  SECTION("timeout out of range, huge numbers") {
    auto t = negotiate({{"timeout", "256"}}, limits, 1);
    CHECK(t.oack.empty());
    auto h = negotiate({{"blksize", "99999999999999999999"}}, limits, 1);
    CHECK(h.oack.empty());
    CHECK_THAT(h.ignored.at(0), Catch::Contains("too large"));
    auto negative = parse_option_number("x", "-1", 0, 10);
    CHECK(std::get_if<ParseError>(&negative) != nullptr);
    CHECK(std::get<uint64_t>(parse_option_number("x", "0010", 0, 10)) == 10);
  }
}

TEST_CASE("file names are normalized beneath the root", "[tftp]") {
  auto ok = [](const std::string& name) {
    auto r = Root::normalize(name, "/srv/tftp");
    return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "REFUSED";
  };
  auto code = [](const std::string& name) {
    auto r = Root::normalize(name, "/srv/tftp");
    return std::holds_alternative<Refusal>(r) ? static_cast<int>(std::get<Refusal>(r).code) : -1;
  };
  CHECK(ok("undionly.kpxe") == "undionly.kpxe");
  CHECK(ok("/undionly.kpxe") == "undionly.kpxe");
  CHECK(ok("//a/./b//c") == "a/b/c");
  CHECK(ok("/srv/tftp/undionly.kpxe") == "undionly.kpxe");
  CHECK(ok("/srv/tftpX/undionly.kpxe") == "srv/tftpX/undionly.kpxe");
  CHECK(ok("/etc/passwd") == "etc/passwd");  // beneath the root, so not found there
  CHECK(code("../../etc/passwd") == 2);
  CHECK(code("a/../../b") == 2);
  CHECK(code("a/..") == 2);
  CHECK(code("..") == 2);
  CHECK(code("a\nb") == 2);
  CHECK(code("/") == 1);
  CHECK(code("") == 1);
  CHECK(code(std::string(2000, 'a')) == 1);
  CHECK(ok("..hidden") == "..hidden");
}

// --- a server on loopback ---------------------------------------------------

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/tftp-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& content) {
    std::ofstream(path / name, std::ios::binary) << content;
  }
};

// A client socket with a one-second receive timeout on every recv.
class Client {
 public:
  explicit Client(uint16_t server_port) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    server_.sin_family = AF_INET;
    server_.sin_port = htons(server_port);
    server_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~Client() { ::close(fd_); }
  void send(const std::vector<uint8_t>& p, const sockaddr_in& to) {
    ::sendto(fd_, p.data(), p.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }
  void request(const Request& r) { send(build_request(r), server_); }
  // The next packet, or a ParseError "timeout" after `ms`.
  Packet receive(int ms = 2000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return ParseError{"timeout"};
    std::vector<uint8_t> buf(70000);
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return ParseError{"recv failed"};
    buf.resize(static_cast<size_t>(n));
    return parse_packet(buf);
  }
  sockaddr_in from{};

 private:
  int fd_;
  sockaddr_in server_{};
};

ServerOptions loopback_options(const std::string& root, std::vector<std::string>* log) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.root = root;
  o.default_timeout = std::chrono::milliseconds(300);
  o.max_retries = 2;
  o.log = [log](const std::string& line) {
    static std::mutex m;
    std::lock_guard lock(m);
    if (log) log->push_back(line);
  };
  return o;
}

}  // namespace

// Opens NAME beneath ROOT: the file's bytes, or "REFUSED <code>" (the
// message in last_refusal).
static std::string last_refusal;
static std::string open_in(const Root& root, const std::string& name) {
  auto r = root.open(name);
  if (auto* refusal = std::get_if<Refusal>(&r)) {
    last_refusal = refusal->message;
    return "REFUSED " + std::to_string(static_cast<int>(refusal->code));
  }
  std::string out(4096, '\0');
  ssize_t n = ::read(std::get<util::UniqueFd>(r).get(), out.data(), out.size());
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

TEST_CASE("symlinks out of the root: followed only when root alone could have planted them", "[tftp]") {
  // outer/target.bin outside the root; outer/root the served directory.
  TempDir outer;
  outer.write("target.bin", "loader");
  auto root = outer.path / "root";
  auto sub = root / "sub";
  std::filesystem::create_directories(sub);
  ::chmod(root.c_str(), 0755);
  ::chmod(sub.c_str(), 0755);
  std::filesystem::create_symlink("../target.bin", root / "relative-out");
  std::filesystem::create_symlink(outer.path / "target.bin", root / "absolute-out");
  std::filesystem::create_symlink(outer.path / "target.bin", sub / "deep-out");
  std::filesystem::create_symlink("target.bin", outer.path / "hop");
  std::filesystem::create_symlink(outer.path / "hop", root / "via-another-link");
  std::filesystem::create_symlink(outer.path, root / "dir-out");
  std::filesystem::create_symlink(outer.path, root / "to-a-directory");
  std::filesystem::create_symlink(outer.path / "target.bin", root / "planted");
  bool as_root = ::geteuid() == 0;
  if (as_root) REQUIRE(::lchown((root / "planted").c_str(), 65534, 65534) == 0);

  SECTION("root's own symlinks in root's own directories are followed") {
    if (as_root) {
      Root r(root.string());
      CHECK(open_in(r, "relative-out") == "loader");
      CHECK(open_in(r, "absolute-out") == "loader");
      CHECK(open_in(r, "sub/deep-out") == "loader");
    } else {
      WARN("not root: only root-owned symlinks are followed, so the accepted case is not tried");
    }
  }
  SECTION("and refused when someone else could have planted them") {
    Root r(root.string());
    CHECK(open_in(r, "planted") == "REFUSED 2");  // owned by nobody (or by this non-root user)
    if (as_root) CHECK(last_refusal == "access violation: planted leads outside the served directory (the symlink is not owned by root)");
    CHECK(open_in(r, "via-another-link") == "REFUSED 2");  // the target is itself a symlink
    if (as_root) CHECK_THAT(last_refusal, Catch::Contains("its target passes through another symlink"));
    CHECK(open_in(r, "dir-out/target.bin") == "REFUSED 2");  // a directory on the way leaves the root
    if (as_root) CHECK_THAT(last_refusal, Catch::Contains("a directory on the way is a symlink"));
    CHECK(open_in(r, "to-a-directory") == "REFUSED 2");      // not a regular file
    CHECK(open_in(r, "nosuch") == "REFUSED 1");
    ::chmod(root.c_str(), 0775);  // the root is group-writable
    CHECK(open_in(Root(root.string()), "absolute-out") == "REFUSED 2");
    CHECK_THAT(last_refusal, Catch::Contains("the root is not owned by root or is writable by group or others"));
    ::chmod(root.c_str(), 0755);
    Root kept(root.string());  // trust is decided per request, not when the root is opened
    ::chmod(root.c_str(), 0775);
    CHECK(open_in(kept, "absolute-out") == "REFUSED 2");
    CHECK_THAT(last_refusal, Catch::Contains("the root is not owned by root or is writable by group or others"));
    ::chmod(root.c_str(), 0757);  // ... or writable by others: nothing is served, and it cannot be opened
    CHECK(open_in(kept, "nosuch") == "REFUSED 2");
    CHECK_THAT(last_refusal, Catch::Contains("writable by every user"));
    CHECK_THROWS_WITH(Root(root.string()), Catch::Contains("writable by every user (mode 0757)"));
    ::chmod(root.c_str(), 0755);
    ::chmod(sub.c_str(), 0775);  // a directory between the root and the link
    CHECK(open_in(Root(root.string()), "sub/deep-out") == "REFUSED 2");
    if (as_root) CHECK_THAT(last_refusal, Catch::Contains("sub is not owned by root"));
    ::chmod(sub.c_str(), 0755);
    if (as_root) {
      REQUIRE(::chown(root.c_str(), 65534, 65534) == 0);  // the root is not root's
      CHECK(open_in(Root(root.string()), "absolute-out") == "REFUSED 2");
      REQUIRE(::chown(root.c_str(), 0, 0) == 0);
      REQUIRE(::lchown((root / "absolute-out").c_str(), 65534, 65534) == 0);  // the link is not root's
      CHECK(open_in(Root(root.string()), "absolute-out") == "REFUSED 2");
    }
  }
}

TEST_CASE("server: virtual files, errors, duplicate ACKs", "[tftp]") {
  TempDir dir;
  std::string content(1000, 'x');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  dir.write("file.bin", content);
  std::vector<std::string> log;
  auto options = loopback_options(dir.path, &log);
  options.virtual_files = [](const std::string& name) -> std::optional<std::string> {
    if (name == "boot.ipxe") return std::string("#!ipxe\nchain http://server/boot.ipxe\n");
    return std::nullopt;
  };
  Server server(options);
  uint16_t port = server.start();

  SECTION("a virtual file is served with its tsize") {
    Client c(port);
    c.request({Opcode::rrq, "/boot.ipxe", "octet", {{"tsize", "0"}}});
    auto oack = c.receive();
    REQUIRE(std::get_if<OptionAck>(&oack));
    CHECK(std::get<OptionAck>(oack).options == OptionList{{"tsize", "37"}});
    c.send(build_ack(0), c.from);
    auto data = c.receive();
    REQUIRE(std::get_if<Data>(&data));
    CHECK(std::get<Data>(data).block == 1);
    CHECK(std::string(std::get<Data>(data).payload.begin(), std::get<Data>(data).payload.end()) ==
          "#!ipxe\nchain http://server/boot.ipxe\n");
    c.send(build_ack(1), c.from);
  }
  SECTION("a duplicate ACK sends nothing; a timeout resends") {
    Client c(port);
    c.request({Opcode::rrq, "file.bin", "octet", {}});
    auto d1 = c.receive();
    REQUIRE(std::get_if<Data>(&d1));
    CHECK(std::get<Data>(d1).payload.size() == 512);
    sockaddr_in tid = c.from;
    c.send(build_ack(1), tid);
    auto d2 = c.receive();
    REQUIRE(std::get_if<Data>(&d2));
    CHECK(std::get<Data>(d2).block == 2);
    CHECK(std::get<Data>(d2).payload.size() == 1000 - 512);
    c.send(build_ack(1), tid);  // duplicate
    // Nothing until the 300 ms timeout, then block 2 again.
    auto quiet = c.receive(200);
    CHECK(error_of(quiet) == "timeout");
    auto again = c.receive(1000);
    REQUIRE(std::get_if<Data>(&again));
    CHECK(std::get<Data>(again).block == 2);
    c.send(build_ack(2), tid);
  }
  SECTION("WRQ, traversal, missing files and bad modes are refused") {
    Client c(port);
    c.request({Opcode::wrq, "file.bin", "octet", {}});
    auto e = c.receive();
    REQUIRE(std::get_if<ErrorPacket>(&e));
    CHECK(std::get<ErrorPacket>(e).code == 2);
    CHECK(std::get<ErrorPacket>(e).message == "read-only server");
    c.request({Opcode::rrq, "../../etc/passwd", "octet", {}});
    e = c.receive();
    REQUIRE(std::get_if<ErrorPacket>(&e));
    CHECK(std::get<ErrorPacket>(e).code == 2);
    c.request({Opcode::rrq, "nosuch", "octet", {}});
    e = c.receive();
    REQUIRE(std::get_if<ErrorPacket>(&e));
    CHECK(std::get<ErrorPacket>(e).code == 1);
    c.request({Opcode::rrq, "file.bin", "mail", {}});
    e = c.receive();
    REQUIRE(std::get_if<ErrorPacket>(&e));
    CHECK(std::get<ErrorPacket>(e).code == 4);
  }
  SECTION("a client that goes away is given up after the retries") {
    Client c(port);
    c.request({Opcode::rrq, "file.bin", "octet", {}});
    auto first = c.receive();
    REQUIRE(std::get_if<Data>(&first));
    for (int i = 0; i < 50 && server.active_transfers() > 0; ++i) ::usleep(50000);
    CHECK(server.active_transfers() == 0);
  }
  server.stop();
  CHECK(server.active_transfers() == 0);
}

TEST_CASE("server: start names a missing root and a bad address", "[tftp]") {
  ServerOptions o = loopback_options("/nonexistent-tftp-root", nullptr);
  Server s(o);
  CHECK_THROWS_WITH(s.start(), Catch::Contains("/nonexistent-tftp-root"));
  TempDir dir;
  ServerOptions bad = loopback_options(dir.path, nullptr);
  bad.listen = "127.0.0.1";
  Server s2(bad);
  CHECK_THROWS_WITH(s2.start(), Catch::Contains("expected ADDRESS:PORT"));
}

TEST_CASE("server: past max_transfers a request gets ERROR 0 busy", "[tftp]") {
  TempDir dir;
  dir.write("file.bin", std::string(2000, 'z'));
  auto options = loopback_options(dir.path, nullptr);
  options.max_transfers = 1;
  Server server(options);
  uint16_t port = server.start();
  Client first(port);
  first.request({Opcode::rrq, "file.bin", "octet", {}});
  auto d = first.receive();
  REQUIRE(std::get_if<Data>(&d));
  // Acknowledged: a real client, not evicted for a newcomer.
  first.send(build_ack(1), first.from);
  auto d2 = first.receive();
  REQUIRE(std::get_if<Data>(&d2));
  Client second(port);
  second.request({Opcode::rrq, "file.bin", "octet", {}});
  auto e = second.receive();
  REQUIRE(std::get_if<ErrorPacket>(&e));
  CHECK(std::get<ErrorPacket>(e).code == 0);
  CHECK(std::get<ErrorPacket>(e).message == "busy, try again later");
  server.stop();  // ends the unacknowledged transfer
  CHECK(server.active_transfers() == 0);
}
