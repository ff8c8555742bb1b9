// Unit tests of lib/iscsi: CRC32C against RFC 3720's vectors, key=value
// text and the negotiation's result functions, CHAP, the SCSI block device
// over an in-memory disk, and serve_connection driven over a socketpair by a
// hand-written initiator (login, CHAP, SendTargets, READ/WRITE with R2T,
// CmdSN window, reinstatement). Target names (serve/iscsi_targets) too.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "iscsi/chap.h"
#include "iscsi/connection.h"
#include "iscsi/params.h"
#include "iscsi/pdu.h"
#include "iscsi/scsi.h"
#include "serve/iscsi_targets.h"
#include "support/memory_device.h"
#include "util/bytes.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/log.h"

using namespace bootfleet;
using namespace bootfleet::iscsi;
using test::MemoryDevice;
using util::load_be16;
using util::load_be32;
using util::store_be16;
using util::store_be32;
using util::store_be64;

namespace {

std::string text_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// ------------------------------------------------------------ SCSI helpers

struct Cdb {
  uint8_t b[16] = {};
};
Cdb rw10(uint8_t op, uint32_t lba, uint16_t blocks, uint8_t flags = 0) {
  Cdb c;
  c.b[0] = op;
  c.b[1] = flags;
  store_be32(c.b + 2, lba);
  store_be16(c.b + 7, blocks);
  return c;
}

struct Run {
  Status status;
  std::vector<uint8_t> data;
  uint32_t produced = 0;
};
Run run(LogicalUnit& lu, const Cdb& c, std::vector<uint8_t> out = {}, uint32_t max_in = 1u << 20, int64_t lun = 0) {
  DataBuffer in;
  Run r;
  r.status = lu.execute(c.b, lun, out, in, max_in, r.produced);
  r.data.assign(in.data(), in.data() + in.size());
  return r;
}
uint8_t sense_key(const Status& s) { return s.sense.size() > 2 ? s.sense[2] & 0x0f : 0xff; }
uint16_t asc(const Status& s) { return s.sense.size() > 13 ? static_cast<uint16_t>(s.sense[12] << 8 | s.sense[13]) : 0xffff; }

}  // namespace

TEST_CASE("crc32c matches RFC 3720's test vectors", "[iscsi]") {
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  CHECK(util::crc32c(zeros.data(), 32) == 0x8a9136aa);
  CHECK(util::crc32c(ones.data(), 32) == 0x62a8ab43);
  CHECK(util::crc32c(up.data(), 32) == 0x46dd794e);
  CHECK(util::crc32c(down.data(), 32) == 0x113fdb5c);
  CHECK(util::crc32c("123456789", 9) == 0xe3069283);
  // Continued over pieces, the same value as at once.
  CHECK(util::crc32c(up.data() + 5, 27, util::crc32c(up.data(), 5)) == 0x46dd794e);
}

TEST_CASE("key=value text parses, refuses malformed lists and writes back", "[iscsi]") {
  std::vector<uint8_t> data;
  append_text(data, "HeaderDigest", "CRC32C,None");
  append_text(data, "MaxRecvDataSegmentLength", "65536");
  data.push_back(0);  // padding
  std::vector<KeyValue> keys;
  REQUIRE(parse_text(data.data(), data.size(), keys).empty());
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].key == "HeaderDigest");
  CHECK(keys[1].value == "65536");

  std::string no_equals("NoEquals", 9);  // includes the NUL
  keys.clear();
  CHECK(parse_text(reinterpret_cast<const uint8_t*>(no_equals.data()), no_equals.size(), keys).find("no '='") != std::string::npos);
  std::string unterminated = "A=b";
  keys.clear();
  CHECK(parse_text(reinterpret_cast<const uint8_t*>(unterminated.data()), unterminated.size(), keys).find("NUL") != std::string::npos);
  std::vector<uint8_t> many;
  for (int i = 0; i < 600; ++i) append_text(many, "K" + std::to_string(i), "v");
  keys.clear();
  CHECK(parse_text(many.data(), many.size(), keys).find("512") != std::string::npos);
  std::string long_key = std::string(64, 'k') + "=v";
  long_key.push_back(0);
  keys.clear();
  CHECK(!parse_text(reinterpret_cast<const uint8_t*>(long_key.data()), long_key.size(), keys).empty());
}

TEST_CASE("negotiation answers with each key's result function", "[iscsi]") {
  TargetLimits limits;
  limits.max_burst_length = 1 << 20;
  limits.first_burst_length = 1 << 18;
  limits.max_recv_data_segment_length = 1 << 18;
  Negotiator n(limits);
  CHECK(n.answer("HeaderDigest", "CRC32C,None") == "CRC32C");
  CHECK(n.answer("DataDigest", "None,CRC32C") == "None");
  CHECK(n.params().header_digest);
  CHECK(!n.params().data_digest);
  CHECK(n.answer("MaxBurstLength", "16776192") == std::to_string(1 << 20));  // min
  CHECK(n.answer("FirstBurstLength", "65536") == "65536");
  CHECK(n.answer("InitialR2T", "No") == "Yes");        // OR with our Yes
  CHECK(n.answer("ImmediateData", "No") == "No");       // AND
  CHECK(n.answer("ErrorRecoveryLevel", "2") == "0");    // min
  CHECK(n.answer("MaxConnections", "8") == "1");
  CHECK(n.answer("DefaultTime2Wait", "0") == "2");      // max
  CHECK(n.answer("DefaultTime2Retain", "60") == "20");  // min
  CHECK(n.answer("MaxOutstandingR2T", "16") == "1");
  CHECK(n.answer("IFMarker", "Yes") == "No");
  CHECK(n.answer("X-com.example.Frobnicate", "1") == "NotUnderstood");
  CHECK(n.answer("MaxBurstLength", "lots") == "Reject");
  CHECK(n.answer("HeaderDigest", "MD5") == "Reject");
  CHECK(n.answer("MaxRecvDataSegmentLength", "8192") == std::to_string(1 << 18));  // we declare ours
  CHECK(n.params().initiator_max_recv == 8192);
  CHECK(n.declarations().empty());  // already declared in the answer
  CHECK(n.seen("ImmediateData"));
  CHECK(!n.params().immediate_data);

  Negotiator fresh(limits);
  auto d = fresh.declarations();
  REQUIRE(d.size() == 1);
  CHECK(d[0].key == "MaxRecvDataSegmentLength");
  CHECK(parse_number("0x10", 0, 100) == 16u);
  CHECK(!parse_number("101", 0, 100));
  CHECK(!parse_number("-1", 0, 100));
}

TEST_CASE("CHAP responses, binary values and the secrets file", "[iscsi]") {
  std::vector<uint8_t> challenge(16);
  for (int i = 0; i < 16; ++i) challenge[i] = static_cast<uint8_t>(i);
  // MD5(0x07 || "secret-secret" || 00..0f), computed independently with Python's hashlib.
  CHECK(encode_hex(chap_response(7, "secret-secret", challenge)) == "0x54a3be57b9f1659c9a82d46edca091b8");
  CHECK(decode_binary("0x0a0B") == std::vector<uint8_t>{0x0a, 0x0b});
  CHECK(decode_binary("0xabc") == std::vector<uint8_t>{0x0a, 0xbc});
  CHECK(decode_binary("0bAAEC") == std::vector<uint8_t>{0x00, 0x01, 0x02});
  CHECK(!decode_binary("0xzz"));
  CHECK(!decode_binary("1234"));
  CHECK(!decode_binary("0b****"));
  CHECK(equal_secret({1, 2, 3}, {1, 2, 3}));
  CHECK(!equal_secret({1, 2, 3}, {1, 2, 4}));
  CHECK(!equal_secret({1, 2, 3}, {1, 2}));

  char dir[] = "/tmp/chapXXXXXX";
  REQUIRE(::mkdtemp(dir));
  std::string path = std::string(dir) + "/secrets";
  {
    std::ofstream f(path);
    f << "# client  user  secret  [target user, target secret]\n"
         "pc01 pc01user 0123456789abcdef\n"
         "*    lab      a-secret-for-all  bootsrv another-secret\n";
  }
  ChapSecrets secrets = ChapSecrets::load(path);
  REQUIRE(secrets.find("pc01"));
  CHECK(secrets.find("pc01")->user == "pc01user");
  CHECK(!secrets.find("pc01")->mutual());
  CHECK(secrets.find("pc02")->user == "lab");
  CHECK(secrets.find("")->mutual());
  auto load_error = [&](const std::string& text) {
    std::ofstream(path) << text;
    try {
      ChapSecrets::load(path);
    } catch (const util::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(load_error("pc01 u short\n").find(path + ":1: the secret of 'pc01' must be 12 to 255") != std::string::npos);
  CHECK(load_error("\npc01 u\n").find(path + ":2: expected NAME USER SECRET") != std::string::npos);
  CHECK(load_error("pc01 u 0123456789abcdef t 0123456789abcdef\n").find("must differ") != std::string::npos);
  CHECK(load_error("a u 0123456789abcdef\na u 0123456789abcdef\n").find(":2: 'a' has a line already") != std::string::npos);
  CHECK_THROWS_WITH(ChapSecrets::load(std::string(dir) + "/missing"), Catch::Contains("cannot read the CHAP secrets file"));
  std::remove(path.c_str());
  ::rmdir(dir);
}

TEST_CASE("LUNs decode from the flat and peripheral forms", "[iscsi]") {
  CHECK(decode_lun(0) == 0);
  CHECK(decode_lun(uint64_t{0x0001} << 48) == 1);           // peripheral, bus 0, LUN 1
  CHECK(decode_lun(uint64_t{0x4005} << 48) == 5);           // flat space
  CHECK(decode_lun((uint64_t{0x0001} << 48) | 1) == -1);    // a second level
  CHECK(decode_lun(uint64_t{0x0101} << 48) == -1);          // bus 1
}

TEST_CASE("the SCSI disk answers the commands initiators send", "[iscsi]") {
  auto dev = std::make_shared<MemoryDevice>(1u << 20, false, true);
  LogicalUnit lu(dev, identity_for("lab/pc01", "iqn.2026-11.org.bootfleet:lab:pc01"));
  const uint64_t blocks = (1u << 20) / 512;

  SECTION("INQUIRY: standard data and the VPD pages") {
    Cdb c;
    c.b[0] = 0x12;
    store_be16(c.b + 3, 255);
    Run r = run(lu, c);
    REQUIRE(r.status.good());
    CHECK(r.data[0] == 0x00);
    CHECK(std::string(r.data.begin() + 8, r.data.begin() + 16) == "BOOTFLT ");
    c.b[1] = 1;
    c.b[2] = 0x00;
    r = run(lu, c);
    CHECK(std::vector<uint8_t>(r.data.begin() + 4, r.data.end()) == std::vector<uint8_t>{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2});
    c.b[2] = 0x80;
    Run page = run(lu, c);
    std::string serial = text_of(std::vector<uint8_t>(page.data.begin() + 4, page.data.end()));
    CHECK(serial.size() == 16);
    // The same export gives the same identity, another export another one.
    LogicalUnit again(dev, identity_for("lab/pc01", "x"));
    LogicalUnit other(dev, identity_for("lab/pc02", "x"));
    c.b[2] = 0x83;
    auto naa = [&](LogicalUnit& l) {
      Run v = run(l, c);
      return std::vector<uint8_t>(v.data.begin() + 8, v.data.begin() + 16);
    };
    CHECK(naa(lu) == naa(again));
    CHECK(naa(lu) != naa(other));
    CHECK((naa(lu)[0] >> 4) == 3);  // NAA locally assigned
    c.b[2] = 0x42;
    r = run(lu, c);
    CHECK(r.status.status == kStatusCheckCondition);
    CHECK(asc(r.status) == 0x2400);
    c.b[1] = 0;
    c.b[2] = 0x80;  // a page without EVPD
    CHECK(asc(run(lu, c).status) == 0x2400);
    // Allocation length truncates; produced says how much there was.
    c.b[1] = 0;
    c.b[2] = 0;
    store_be16(c.b + 3, 5);
    r = run(lu, c);
    CHECK(r.data.size() == 5);
    CHECK(r.produced == 5);
  }

  SECTION("READ CAPACITY 10 and 16, thin provisioning bits") {
    Cdb c;
    c.b[0] = 0x25;
    Run r = run(lu, c);
    CHECK(load_be32(r.data.data()) == blocks - 1);
    CHECK(load_be32(r.data.data() + 4) == 512);
    Cdb c16;
    c16.b[0] = 0x9e;
    c16.b[1] = 0x10;
    store_be32(c16.b + 10, 32);
    r = run(lu, c16);
    REQUIRE(r.data.size() == 32);
    CHECK(util::load_be64(r.data.data()) == blocks - 1);
    CHECK((r.data[14] & 0xc0) == 0xc0);  // LBPME, LBPRZ
  }

  SECTION("WRITE then READ round trip, FUA and DPO accepted") {
    std::vector<uint8_t> data(1024);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 13);
    Run w = run(lu, rw10(0x2a, 10, 2, 0x08), data);
    REQUIRE(w.status.good());
    CHECK(dev->fua_writes == 1);
    Run r = run(lu, rw10(0x28, 10, 2, 0x10));
    REQUIRE(r.status.good());
    CHECK(r.data == data);
    CHECK(r.produced == 1024);
    // A short EDTL gets what fits, in whole blocks read.
    r = run(lu, rw10(0x28, 10, 2), {}, 200);
    CHECK(r.produced == 1024);
    CHECK(r.data.size() == 512);
  }

  SECTION("ranges past the end and protection fields are refused") {
    Run r = run(lu, rw10(0x28, static_cast<uint32_t>(blocks - 1), 2));
    CHECK(sense_key(r.status) == kIllegalRequest);
    CHECK(asc(r.status) == 0x2100);
    CHECK(run(lu, rw10(0x28, static_cast<uint32_t>(blocks), 0)).status.good());
    CHECK(asc(run(lu, rw10(0x28, static_cast<uint32_t>(blocks + 1), 0)).status) == 0x2100);
    CHECK(asc(run(lu, rw10(0x28, 0, 1, 0x20)).status) == 0x2400);  // RDPROTECT
    CHECK(asc(run(lu, rw10(0x2a, 0, 1, 0x20), std::vector<uint8_t>(512)).status) == 0x2400);
  }

  SECTION("a read-only disk: DATA PROTECT on writes, WP in MODE SENSE") {
    LogicalUnit ro(std::make_shared<MemoryDevice>(1u << 20, true, true), identity_for("lab@1", "x"));
    Run w = run(ro, rw10(0x2a, 0, 1), std::vector<uint8_t>(512));
    CHECK(sense_key(w.status) == kDataProtect);
    CHECK(asc(w.status) == 0x2700);
    CHECK(ro.prepare(rw10(0x2a, 0, 1).b, 0).early.status == kStatusCheckCondition);
    Cdb ms;
    ms.b[0] = 0x1a;
    ms.b[2] = 0x3f;
    ms.b[4] = 255;
    Run m = run(ro, ms);
    CHECK((m.data[2] & 0x80) != 0);
    m = run(lu, ms);
    CHECK((m.data[2] & 0x80) == 0);
    CHECK((m.data[2] & 0x10) != 0);  // DPOFUA
  }

  SECTION("UNMAP and WRITE SAME read back as zeros; a pattern is repeated") {
    run(lu, rw10(0x2a, 0, 8), std::vector<uint8_t>(4096, 0xab));
    std::vector<uint8_t> list(24, 0);
    store_be16(list.data(), 22);
    store_be16(list.data() + 2, 16);
    store_be64(list.data() + 8, 2);
    store_be32(list.data() + 16, 2);
    Cdb u;
    u.b[0] = 0x42;
    store_be16(u.b + 7, 24);
    REQUIRE(run(lu, u, list).status.good());
    Run r = run(lu, rw10(0x28, 0, 8));
    CHECK(r.data[2 * 512] == 0);
    CHECK(r.data[4 * 512 - 1] == 0);
    CHECK(r.data[4 * 512] == 0xab);
    CHECK(r.data[0] == 0xab);
    // A descriptor past the end refuses the whole list.
    store_be64(list.data() + 8, blocks);
    CHECK(asc(run(lu, u, list).status) == 0x2100);

    Cdb ws = rw10(0x41, 8, 4);
    REQUIRE(run(lu, ws, std::vector<uint8_t>(512, 0x5a)).status.good());
    r = run(lu, rw10(0x28, 8, 4));
    CHECK(std::all_of(r.data.begin(), r.data.end(), [](uint8_t b) { return b == 0x5a; }));
    ws.b[1] = 0x08;  // UNMAP: deallocated whatever the block holds
    REQUIRE(run(lu, ws, std::vector<uint8_t>(512, 0x5a)).status.good());
    r = run(lu, rw10(0x28, 8, 4));
    CHECK(std::all_of(r.data.begin(), r.data.end(), [](uint8_t b) { return b == 0; }));
  }

  SECTION("VERIFY compares, COMPARE AND WRITE writes only on a match") {
    std::vector<uint8_t> data(512, 0x11);
    run(lu, rw10(0x2a, 20, 1), data);
    Cdb v = rw10(0x2f, 20, 1, 0x02);  // BYTCHK 1
    CHECK(run(lu, v, data).status.good());
    data[100] = 0x12;
    Run r = run(lu, v, data);
    CHECK(sense_key(r.status) == kMiscompare);
    CHECK(load_be32(r.status.sense.data() + 3) == 100);  // INFORMATION: the first byte that differs

    Cdb caw;
    caw.b[0] = 0x89;
    store_be64(caw.b + 2, 20);
    caw.b[13] = 1;
    std::vector<uint8_t> both(1024, 0x11);
    std::fill(both.begin() + 512, both.end(), 0x22);
    CHECK(run(lu, caw, both).status.good());
    CHECK(run(lu, rw10(0x28, 20, 1)).data[0] == 0x22);
    CHECK(sense_key(run(lu, caw, both).status) == kMiscompare);  // holds 0x22 now
  }

  SECTION("REPORT LUNS, LUNs that do not exist, unknown opcodes") {
    Cdb rl;
    rl.b[0] = 0xa0;
    store_be32(rl.b + 6, 16);
    Run r = run(lu, rl);
    CHECK(load_be32(r.data.data()) == 8);
    store_be32(rl.b + 6, 8);
    CHECK(asc(run(lu, rl).status) == 0x2400);
    Cdb inq;
    inq.b[0] = 0x12;
    store_be16(inq.b + 3, 36);
    CHECK(run(lu, inq, {}, 1u << 20, 1).data[0] == 0x7f);
    CHECK(asc(run(lu, rw10(0x28, 0, 1), {}, 1u << 20, 1).status) == 0x2500);
    Cdb odd;
    odd.b[0] = 0xc7;
    CHECK(asc(run(lu, odd).status) == 0x2000);
    CHECK(lu.prepare(odd.b, 0).early.status == kStatusCheckCondition);  // before any data is asked for
  }

  SECTION("SYNCHRONIZE CACHE flushes; MODE SENSE pages and saved values") {
    Cdb sc;
    sc.b[0] = 0x35;
    int before = dev->flushes;
    CHECK(run(lu, sc).status.good());
    CHECK(dev->flushes == before + 1);
    Cdb ms;
    ms.b[0] = 0x1a;
    ms.b[2] = 0x08;
    ms.b[4] = 255;
    Run r = run(lu, ms);
    REQUIRE(r.data.size() == 4 + 8 + 20);
    CHECK(r.data[12] == 0x08);
    CHECK((r.data[14] & 0x04) != 0);  // WCE
    ms.b[2] = 0xc8;                    // saved values
    CHECK(asc(run(lu, ms).status) == 0x3900);
  }
}

TEST_CASE("target names map the store's exports both ways", "[iscsi]") {
  CHECK(serve::target_name("iqn.2026-11.org.bootfleet", "lab") == "iqn.2026-11.org.bootfleet:lab");
  CHECK(serve::target_name("iqn.2026-11.org.bootfleet", "lab/PC_01") == "iqn.2026-11.org.bootfleet:lab:pc-01");
  CHECK(serve::target_name("iqn.2026-11.org.bootfleet", "lab@3") == "iqn.2026-11.org.bootfleet:lab:version:3");
  CHECK(serve::iqn_part("Win_10") == "win-10");
  CHECK_NOTHROW(serve::validate_iqn_prefix("iqn.2026-11.org.bootfleet", "x"));
  CHECK_NOTHROW(serve::validate_iqn_prefix("iqn.2001-04.com.example:storage", "x"));
  CHECK_THROWS_WITH(serve::validate_iqn_prefix("iqn.2026-11.Org.bootfleet", "cfg"), Catch::Contains("cfg: 'iqn.2026-11.Org.bootfleet' has 'O'"));
  CHECK_THROWS_WITH(serve::validate_iqn_prefix("bootfleet", "cfg"), Catch::Contains("must start with iqn."));
  CHECK_THROWS_WITH(serve::validate_iqn_prefix("iqn.2026-11.org.bootfleet:", "cfg"), Catch::Contains("must not end"));
  CHECK_THROWS_WITH(serve::validate_iqn_prefix("iqn.bootfleet", "cfg"), Catch::Contains("date"));
}

// ----------------------------------------------------- a tiny initiator

namespace {

constexpr const char* kTarget = "iqn.2026-11.org.bootfleet:mem";

// One disk for every login; CHAP when `chap` is set.
class MemoryTargets : public Targets {
 public:
  std::shared_ptr<MemoryDevice> device = std::make_shared<MemoryDevice>(1u << 20, false, true);
  std::optional<ChapCredentials> chap;
  int opens = 0, releases = 0;
  std::optional<ChapCredentials> authentication(const std::string& target) override {
    if (!target.empty() && target != kTarget) throw TargetError(kLoginNotFound, "no target " + target);
    return chap;
  }
  OpenedTarget open(const std::string& target, const std::string&) override {
    if (target != kTarget) throw TargetError(kLoginNotFound, "no target " + target);
    ++opens;
    return {{device, "memory", [this] { ++releases; }}, identity_for("mem", kTarget)};
  }
  std::vector<std::string> list() override { return {kTarget}; }
};

class Initiator {
 public:
  Initiator(MemoryTargets& targets, SessionTable& sessions, uint8_t isid_tail = 1) : isid_tail_(isid_tail) {
    util::set_log_enabled(false);
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) == 0);
    server_ = std::thread([this, &targets, &sessions] {
      serve_connection(fds_[1], targets, sessions, "test");
      ::shutdown(fds_[1], SHUT_RDWR);
    });
  }
  ~Initiator() {
    ::shutdown(fds_[0], SHUT_RDWR);
    server_.join();
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  void send(const Pdu& p) {
    Pdu copy = p;
    copy.set_data_length(static_cast<uint32_t>(p.data.size()));
    std::vector<uint8_t> wire(copy.bhs, copy.bhs + kBhsSize);
    wire.insert(wire.end(), p.data.begin(), p.data.end());
    wire.resize(kBhsSize + padded(static_cast<uint32_t>(p.data.size())));
    REQUIRE(::send(fds_[0], wire.data(), wire.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(wire.size()));
  }
  // The next PDU, or nullopt when none comes within `ms` or the server closed.
  std::optional<Pdu> receive(int ms = 5000) {
    Pdu p;
    if (!read_exact(p.bhs, kBhsSize, ms)) return std::nullopt;
    std::vector<uint8_t> data(padded(p.data_length()));
    if (!data.empty() && !read_exact(data.data(), data.size(), ms)) return std::nullopt;
    data.resize(p.data_length());
    p.data = std::move(data);
    return p;
  }
  bool closed_by_server(int ms = 5000) {
    pollfd pfd{fds_[0], POLLIN, 0};
    if (::poll(&pfd, 1, ms) <= 0) return false;
    char c;
    return ::recv(fds_[0], &c, 1, MSG_PEEK) == 0;
  }

  Pdu login_pdu(uint8_t flags, const std::vector<std::pair<std::string, std::string>>& keys) {
    Pdu p;
    p.set_opcode(kOpLoginRequest | kImmediateBit);
    p.bhs[1] = flags;
    uint8_t isid[6] = {0x80, 0, 0, 0, 0, isid_tail_};
    std::memcpy(p.bhs + 8, isid, 6);
    p.set_u32(16, itt_++);
    p.set_u32(24, cmdsn_);
    for (const auto& [k, v] : keys) append_text(p.data, k, v);
    return p;
  }
  static std::map<std::string, std::string> keys_of(const Pdu& p) {
    std::vector<KeyValue> kv;
    parse_text(p.data.data(), p.data.size(), kv);
    std::map<std::string, std::string> m;
    for (auto& k : kv) m[k.key] = k.value;
    return m;
  }
  // Login without authentication straight to the full feature phase.
  Pdu login(const std::string& target = kTarget, const std::string& session = "Normal") {
    std::vector<std::pair<std::string, std::string>> keys = {
        {"InitiatorName", "iqn.2026-11.test:initiator"}, {"SessionType", session},
        {"AuthMethod", "None"}, {"HeaderDigest", "None"}, {"DataDigest", "None"},
        {"MaxRecvDataSegmentLength", "8192"}, {"ImmediateData", "Yes"}};
    if (session == "Normal") keys.insert(keys.begin() + 1, {"TargetName", target});
    send(login_pdu(kLoginTransit | (kSecurityStage << 2) | kFullFeaturePhase, keys));
    auto r = receive();
    REQUIRE(r);
    return *r;
  }
  Pdu logout_pdu(uint32_t itt) {
    Pdu p;
    p.set_opcode(kOpLogoutRequest | kImmediateBit);
    p.bhs[1] = kFinalBit;
    p.set_u32(16, itt);
    p.set_u32(24, cmdsn_);
    return p;
  }
  Pdu command(const uint8_t* cdb, uint8_t flags, uint32_t edtl, std::vector<uint8_t> immediate = {}) {
    Pdu p;
    p.set_opcode(kOpScsiCommand);
    p.bhs[1] = static_cast<uint8_t>(kFinalBit | flags);
    p.set_u32(16, itt_++);
    p.set_u32(20, edtl);
    p.set_u32(24, cmdsn_++);
    std::memcpy(p.bhs + 32, cdb, 16);
    p.data = std::move(immediate);
    return p;
  }
  uint32_t cmdsn_ = 1;

 private:
  bool read_exact(uint8_t* p, size_t n, int ms) {
    while (n > 0) {
      pollfd pfd{fds_[0], POLLIN, 0};
      if (::poll(&pfd, 1, ms) <= 0) return false;
      ssize_t got = ::recv(fds_[0], p, n, 0);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  int fds_[2];
  std::thread server_;
  uint32_t itt_ = 1;
  uint8_t isid_tail_;
};

uint16_t login_status(const Pdu& r) { return static_cast<uint16_t>(r.bhs[36] << 8 | r.bhs[37]); }

}  // namespace

TEST_CASE("an initiator logs in, reads and writes through R2T, and logs out", "[iscsi]") {
  MemoryTargets targets;
  SessionTable sessions;
  Initiator ini(targets, sessions);
  Pdu r = ini.login();
  REQUIRE(r.opcode() == kOpLoginResponse);
  CHECK(login_status(r) == 0);
  CHECK((r.flags() & kLoginTransit) != 0);
  CHECK((r.flags() & 3) == kFullFeaturePhase);
  CHECK(load_be16(r.bhs + 14) != 0);  // TSIH
  auto keys = Initiator::keys_of(r);
  CHECK(keys["TargetPortalGroupTag"] == "1");
  CHECK(keys.count("MaxRecvDataSegmentLength"));
  CHECK(targets.opens == 1);

  // A 2-block WRITE with 512 bytes of immediate data: one R2T for the rest.
  std::vector<uint8_t> data(1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i ^ 0x5c);
  Cdb w = rw10(0x2a, 4, 2);
  ini.send(ini.command(w.b, kCmdWrite, 1024, {data.begin(), data.begin() + 512}));
  auto r2t = ini.receive();
  REQUIRE(r2t);
  REQUIRE(r2t->opcode() == kOpR2t);
  CHECK(r2t->u32(40) == 512);  // buffer offset
  CHECK(r2t->u32(44) == 512);  // desired length
  Pdu out;
  out.set_opcode(kOpDataOut);
  out.bhs[1] = kFinalBit;
  out.set_u32(16, r2t->itt());
  out.set_u32(20, r2t->u32(20));
  out.set_u32(36, 0);
  out.set_u32(40, 512);
  out.data.assign(data.begin() + 512, data.end());
  ini.send(out);
  auto resp = ini.receive();
  REQUIRE(resp);
  REQUIRE(resp->opcode() == kOpScsiResponse);
  CHECK(resp->bhs[3] == kStatusGood);
  CHECK(targets.device->bytes(4 * 512, 1024) == data);

  // READ: Data-In with the status folded into the last PDU.
  Cdb rd = rw10(0x28, 4, 2);
  ini.send(ini.command(rd.b, kCmdRead, 1024));
  std::vector<uint8_t> got;
  while (true) {
    auto in = ini.receive();
    REQUIRE(in);
    REQUIRE(in->opcode() == kOpDataIn);
    CHECK(in->u32(40) == got.size());
    got.insert(got.end(), in->data.begin(), in->data.end());
    if (in->flags() & kDataInStatus) {
      CHECK(in->bhs[3] == kStatusGood);
      break;
    }
  }
  CHECK(got == data);

  // A command with a CmdSN past the window is ignored; the next one works.
  Cdb tur;
  Pdu far = ini.command(tur.b, 0, 0);
  far.set_u32(24, ini.cmdsn_ + 1000);
  ini.send(far);
  CHECK(!ini.receive(300));
  ini.cmdsn_--;  // `far` took a number the target never saw
  ini.send(ini.command(tur.b, 0, 0));
  auto ok = ini.receive();
  REQUIRE(ok);
  CHECK(ok->opcode() == kOpScsiResponse);

  // Data-Out for a task that does not exist: a Reject, and the connection lives.
  Pdu stray = out;
  stray.set_u32(16, 0x7777);
  ini.send(stray);
  auto rej = ini.receive();
  REQUIRE(rej);
  CHECK(rej->opcode() == kOpReject);
  CHECK(rej->bhs[2] == kRejectInvalidField);

  ini.send(ini.logout_pdu(99));
  auto bye = ini.receive();
  REQUIRE(bye);
  CHECK(bye->opcode() == kOpLogoutResponse);
  CHECK(bye->bhs[2] == 0);
  CHECK(ini.closed_by_server());
}

TEST_CASE("discovery lists the targets; logins that must fail do", "[iscsi]") {
  MemoryTargets targets;
  SessionTable sessions;
  SECTION("SendTargets=All") {
    Initiator ini(targets, sessions);
    REQUIRE(login_status(ini.login("", "Discovery")) == 0);
    Pdu t;
    t.set_opcode(kOpTextRequest | kImmediateBit);
    t.bhs[1] = kFinalBit;
    t.set_u32(16, 5);
    t.set_u32(20, kReservedTag);
    t.set_u32(24, ini.cmdsn_);
    append_text(t.data, "SendTargets", "All");
    ini.send(t);
    auto r = ini.receive();
    REQUIRE(r);
    CHECK(r->opcode() == kOpTextResponse);
    CHECK(Initiator::keys_of(*r)["TargetName"] == kTarget);
    // No SCSI in a discovery session.
    Cdb tur;
    ini.send(ini.command(tur.b, 0, 0));
    auto rej = ini.receive();
    REQUIRE(rej);
    CHECK(rej->opcode() == kOpReject);
    CHECK(ini.closed_by_server());
  }
  SECTION("an unknown target: status 0x0203") {
    Initiator ini(targets, sessions);
    CHECK(login_status(ini.login("iqn.2026-11.org.bootfleet:nothing")) == kLoginNotFound);
    CHECK(ini.closed_by_server());
  }
  SECTION("a key sent twice: an initiator error") {
    Initiator ini(targets, sessions);
    ini.send(ini.login_pdu(kLoginTransit | kFullFeaturePhase | (kSecurityStage << 2),
                           {{"InitiatorName", "iqn.x"}, {"TargetName", kTarget}, {"MaxBurstLength", "512"},
                            {"MaxBurstLength", "1024"}}));
    auto r = ini.receive();
    REQUIRE(r);
    CHECK(login_status(*r) == kLoginInitiatorError);
  }
  SECTION("CHAP required: a login without it, and a wrong response") {
    targets.chap = ChapCredentials{"user", "a-secret-of-ours", "", ""};
    {
      Initiator ini(targets, sessions);
      CHECK(login_status(ini.login()) == kLoginAuthFailed);
    }
    Initiator ini(targets, sessions);
    ini.send(ini.login_pdu(kSecurityStage << 2, {{"InitiatorName", "iqn.x"}, {"TargetName", kTarget}, {"AuthMethod", "CHAP,None"}}));
    auto r = ini.receive();
    REQUIRE(r);
    CHECK(Initiator::keys_of(*r)["AuthMethod"] == "CHAP");
    ini.send(ini.login_pdu(kSecurityStage << 2, {{"CHAP_A", "5"}}));
    r = ini.receive();
    REQUIRE(r);
    auto k = Initiator::keys_of(*r);
    REQUIRE(k.count("CHAP_C"));
    ini.send(ini.login_pdu(kLoginTransit | (kSecurityStage << 2) | kOperationalStage,
                           {{"CHAP_N", "user"}, {"CHAP_R", "0x00112233445566778899aabbccddeeff"}}));
    r = ini.receive();
    REQUIRE(r);
    CHECK(login_status(*r) == kLoginAuthFailed);
    CHECK(targets.opens == 0);
  }
  SECTION("mutual CHAP succeeds with the right secrets") {
    targets.chap = ChapCredentials{"user", "a-secret-of-ours", "tgt", "the-targets-secret"};
    Initiator ini(targets, sessions);
    ini.send(ini.login_pdu(kSecurityStage << 2, {{"InitiatorName", "iqn.x"}, {"TargetName", kTarget}, {"AuthMethod", "CHAP"}}));
    REQUIRE(ini.receive());
    ini.send(ini.login_pdu(kSecurityStage << 2, {{"CHAP_A", "7,5"}}));
    auto r = ini.receive();
    REQUIRE(r);
    auto k = Initiator::keys_of(*r);
    CHECK(k["CHAP_A"] == "5");
    auto id = static_cast<uint8_t>(std::stoi(k["CHAP_I"]));
    auto challenge = *decode_binary(k["CHAP_C"]);
    std::vector<uint8_t> ours(16, 0x42);
    ini.send(ini.login_pdu(kLoginTransit | (kSecurityStage << 2) | kFullFeaturePhase,
                           {{"CHAP_N", "user"}, {"CHAP_R", encode_hex(chap_response(id, "a-secret-of-ours", challenge))},
                            {"CHAP_I", "9"}, {"CHAP_C", encode_hex(ours)}}));
    r = ini.receive();
    REQUIRE(r);
    CHECK(login_status(*r) == 0);
    k = Initiator::keys_of(*r);
    CHECK(k["CHAP_N"] == "tgt");
    CHECK(k["CHAP_R"] == encode_hex(chap_response(9, "the-targets-secret", ours)));
    CHECK(targets.opens == 1);
  }
}

TEST_CASE("a second login with the same initiator name and ISID reinstates the session", "[iscsi]") {
  MemoryTargets targets;
  SessionTable sessions;
  Initiator first(targets, sessions, 7);
  Pdu r1 = first.login();
  REQUIRE(login_status(r1) == 0);
  Initiator second(targets, sessions, 7);
  Pdu r2 = second.login();
  REQUIRE(login_status(r2) == 0);
  CHECK(first.closed_by_server());
  // The disk the first connection had is taken over, not opened anew: an
  // anonymous session keeps its write cache across the blip.
  CHECK(targets.opens == 1);
  CHECK(targets.releases == 0);
  // A different ISID is a different session: both stay.
  Initiator third(targets, sessions, 8);
  REQUIRE(login_status(third.login()) == 0);
  Cdb tur;
  second.send(second.command(tur.b, 0, 0));
  auto ok = second.receive();
  REQUIRE(ok);
  CHECK(ok->bhs[3] == kStatusGood);
  // A TSIH that names no session is refused.
  Initiator stale(targets, sessions, 9);
  Pdu p = stale.login_pdu(kLoginTransit | (kSecurityStage << 2) | kFullFeaturePhase,
                          {{"InitiatorName", "iqn.2026-11.test:initiator"}, {"TargetName", kTarget}, {"AuthMethod", "None"}});
  store_be16(p.bhs + 14, 0x7abc);
  stale.send(p);
  auto r = stale.receive();
  REQUIRE(r);
  CHECK(login_status(*r) == kLoginNoSession);
}

TEST_CASE("a peer that says nothing is closed when the login time runs out", "[iscsi]") {
  util::set_log_enabled(false);
  MemoryTargets targets;
  SessionTable sessions;
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  ConnectionOptions options;
  options.login_timeout = std::chrono::seconds(1);
  std::thread server([&] {
    serve_connection(fds[1], targets, sessions, "test", options);
    ::shutdown(fds[1], SHUT_RDWR);
  });
  // Half a login header, then silence.
  uint8_t half[20] = {kOpLoginRequest | kImmediateBit};
  REQUIRE(::send(fds[0], half, sizeof half, 0) == sizeof half);
  pollfd p{fds[0], POLLIN, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  char c;
  CHECK(::recv(fds[0], &c, 1, 0) == 0);  // closed by the target
  server.join();
  ::close(fds[0]);
  ::close(fds[1]);
  CHECK(targets.opens == 0);
}

TEST_CASE("what a vanished connection had open is kept for Time2Retain, then let go", "[iscsi]") {
  MemoryTargets targets;
  SessionTable sessions;
  {
    Initiator gone(targets, sessions, 3);
    REQUIRE(login_status(gone.login()) == 0);
  }  // disconnects without a Logout
  CHECK(targets.opens == 1);
  CHECK(targets.releases == 0);
  CHECK(sessions.tsih_of("iqn.2026-11.test:initiator,800000000003") != 0);
  {
    Initiator back(targets, sessions, 3);
    REQUIRE(login_status(back.login()) == 0);
    CHECK(targets.opens == 1);  // the same disk
    Pdu lo;
    lo.set_opcode(kOpLogoutRequest | kImmediateBit);
    lo.bhs[1] = kFinalBit;
    lo.set_u32(16, 1);
    lo.set_u32(24, back.cmdsn_);
    back.send(lo);
    REQUIRE(back.receive());
    CHECK(back.closed_by_server());
  }
  // A Logout keeps nothing.
  CHECK(targets.releases == 1);
  {
    Initiator gone(targets, sessions, 4);
    REQUIRE(login_status(gone.login()) == 0);
  }
  CHECK(targets.releases == 1);
  sessions.expire();  // not yet due
  CHECK(targets.releases == 1);
}

// ------------------------------------- large READs on the connection's workers

namespace {

// What the initiator saw of a run of pipelined commands, checked as it
// comes: StatSN rises by one per response in wire order (the target takes it
// when it sends), one task's Data-In PDUs are not interleaved with another's
// PDUs, and each Data-In continues its task's data where the last one ended.
struct Wire {
  std::optional<uint32_t> last_stat_sn;
  uint32_t open_itt = kReservedTag;  // a task whose Data-In has begun and not ended
  std::map<uint32_t, std::vector<uint8_t>> data;
  std::map<uint32_t, uint8_t> status;     // ITT -> SCSI status, in arrival order below
  std::vector<uint32_t> order;            // ITTs of responses (tasks, TMF, logout) as they came
  std::map<uint32_t, uint8_t> tmf;        // TMF ITT -> response

  void take(const Pdu& p) {
    const uint8_t op = p.opcode();
    bool has_status = op == kOpScsiResponse || op == kOpTaskResponse || op == kOpLogoutResponse ||
                      (op == kOpDataIn && (p.flags() & kDataInStatus));
    if (open_itt != kReservedTag) {
      INFO("a PDU (opcode " << int(op) << ", ITT " << p.itt() << ") in the middle of task " << open_itt << "'s Data-In");
      const bool same_task = (op == kOpDataIn || op == kOpScsiResponse) && p.itt() == open_itt;
      REQUIRE(same_task);
    }
    if (op == kOpDataIn) {
      auto& d = data[p.itt()];
      CHECK(p.u32(40) == d.size());  // buffer offset
      d.insert(d.end(), p.data.begin(), p.data.end());
      open_itt = (p.flags() & kDataInStatus) ? kReservedTag : p.itt();
    }
    if (op == kOpScsiResponse) open_itt = kReservedTag;
    if (has_status) {
      if (last_stat_sn) CHECK(p.u32(24) == *last_stat_sn + 1);
      last_stat_sn = p.u32(24);
      order.push_back(p.itt());
      if (op == kOpTaskResponse) tmf[p.itt()] = p.bhs[2];
      else if (op != kOpLogoutResponse) status[p.itt()] = p.bhs[3];
    }
  }
  // Receives until `done` holds; false when nothing came for 5 s.
  template <class Done>
  bool until(Initiator& ini, Done done) {
    while (!done()) {
      auto p = ini.receive();
      if (!p) return false;
      take(*p);
    }
    return true;
  }
  bool got(uint32_t itt) const { return status.count(itt) != 0; }
  size_t position(uint32_t itt) const {
    return static_cast<size_t>(std::find(order.begin(), order.end(), itt) - order.begin());
  }
};

Pdu tmf_pdu(Initiator& ini, uint32_t itt, uint8_t function, uint32_t ref = kReservedTag) {
  Pdu p;
  p.set_opcode(kOpTaskRequest | kImmediateBit);
  p.bhs[1] = static_cast<uint8_t>(kFinalBit | function);
  p.set_u32(16, itt);
  p.set_u32(20, ref);
  p.set_u32(24, ini.cmdsn_);
  return p;
}

bool wait_for(const std::function<bool()>& cond) {
  for (int i = 0; i < 10000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace

TEST_CASE("large READs on workers: pipelined, StatSN in wire order, ABORT TASK, LUN RESET and Logout in flight",
          "[iscsi]") {
  MemoryTargets targets;
  auto& dev = *targets.device;
  SessionTable sessions;
  Initiator ini(targets, sessions);
  REQUIRE(login_status(ini.login()) == 0);
  constexpr uint16_t kBlocks = 256;  // 128 KiB: from here READs go to the workers
  // Sends READs of kBlocks at LBAs 0, 256, ... (the disk has 2048 blocks);
  // returns their ITTs.
  auto send_reads = [&](int n, uint32_t first_itt) {
    std::vector<uint32_t> itts;
    for (int i = 0; i < n; ++i) {
      Cdb rd = rw10(0x28, static_cast<uint32_t>(i % 8) * kBlocks, kBlocks);
      Pdu p = ini.command(rd.b, kCmdRead, kBlocks * 512u);
      p.set_u32(16, first_itt + static_cast<uint32_t>(i));
      ini.send(p);
      itts.push_back(first_itt + static_cast<uint32_t>(i));
    }
    return itts;
  };
  auto expect_data = [&](Wire& w, uint32_t itt, int i) {
    CHECK(w.status[itt] == kStatusGood);
    CHECK(w.data[itt] == dev.bytes(static_cast<uint64_t>(i % 8) * kBlocks * 512, kBlocks * 512u));
  };

  SECTION("many in flight: every one whole and right") {
    Wire w;
    auto itts = send_reads(24, 1000);  // within the CmdSN window of 32
    REQUIRE(w.until(ini, [&] { return w.status.size() == itts.size(); }));
    for (size_t i = 0; i < itts.size(); ++i) expect_data(w, itts[i], static_cast<int>(i));
    // The reading thread's own responses stay in StatSN order with the workers'.
    Cdb tur;
    Pdu t = ini.command(tur.b, 0, 0);
    t.set_u32(16, 77);
    ini.send(t);
    REQUIRE(w.until(ini, [&] { return w.got(77); }));
  }

  // From here reads wait on the "disk" until the test lets them go: four
  // run (one per worker), the rest are queued.
  dev.cached_below = 0;
  dev.hold_slow_reads = true;
  auto release = [&] { dev.hold_slow_reads = false; };

  SECTION("ABORT TASK: a queued read never answers; a running one answers before the TMF response") {
    Wire w;
    auto itts = send_reads(8, 2000);
    REQUIRE(wait_for([&] { return dev.slow_reads == 4; }));
    ini.send(tmf_pdu(ini, 9001, kTmfAbortTask, itts[7]));  // queued behind four running
    REQUIRE(w.until(ini, [&] { return w.tmf.count(9001) != 0; }));
    CHECK(w.tmf[9001] == kTmfComplete);
    CHECK(w.status.empty());  // nothing else could have been answered yet
    ini.send(tmf_pdu(ini, 9002, kTmfAbortTask, itts[0]));  // running: the target waits for it
    CHECK_FALSE(ini.receive(200));
    release();
    REQUIRE(w.until(ini, [&] { return w.tmf.count(9002) != 0 && w.status.size() == 7; }));
    CHECK(w.tmf[9002] == kTmfComplete);
    CHECK(w.position(itts[0]) < w.position(9002));
    CHECK_FALSE(w.got(itts[7]));
    for (int i = 0; i < 7; ++i) expect_data(w, itts[static_cast<size_t>(i)], i);
    ini.send(tmf_pdu(ini, 9003, kTmfAbortTask, itts[7]));  // long gone
    REQUIRE(w.until(ini, [&] { return w.tmf.count(9003) != 0; }));
    CHECK(w.tmf[9003] == kTmfNoTask);
  }

  SECTION("LUN RESET: the queued reads are dropped, the running ones finish first") {
    Wire w;
    auto itts = send_reads(8, 3000);
    REQUIRE(wait_for([&] { return dev.slow_reads == 4; }));
    ini.send(tmf_pdu(ini, 9101, kTmfLunReset));
    CHECK_FALSE(ini.receive(200));
    release();
    REQUIRE(w.until(ini, [&] { return w.tmf.count(9101) != 0; }));
    CHECK(w.tmf[9101] == kTmfComplete);
    CHECK(w.status.size() == 4);  // the four that were running, all before the TMF response
    Cdb tur;
    Pdu t = ini.command(tur.b, 0, 0);
    t.set_u32(16, 78);
    ini.send(t);
    REQUIRE(w.until(ini, [&] { return w.got(78); }));
    CHECK(w.status.size() == 5);  // and nothing of the dropped ones after it
    for (size_t i = 0; i < itts.size(); ++i)
      if (w.got(itts[i])) expect_data(w, itts[i], static_cast<int>(i));
  }

  SECTION("Logout: every read in flight answers before the Logout Response") {
    Wire w;
    auto itts = send_reads(8, 4000);
    REQUIRE(wait_for([&] { return dev.slow_reads == 4; }));
    ini.send(ini.logout_pdu(9201));
    CHECK_FALSE(ini.receive(200));
    release();
    bool logged_out = false;
    REQUIRE(w.until(ini, [&] {
      logged_out = !w.order.empty() && w.order.back() == 9201;
      return logged_out;
    }));
    CHECK(w.status.size() == 8);
    for (size_t i = 0; i < itts.size(); ++i) expect_data(w, itts[i], static_cast<int>(i));
    CHECK(ini.closed_by_server());
  }

  SECTION("a small READ that waits for the disk does not hold up the cached commands behind it") {
    dev.cached_below = 512u << 10;  // blocks from 1024 on are "on the disk"
    Wire w;
    Cdb slow = rw10(0x28, 1024, 8), fast = rw10(0x28, 0, 8), tur;
    Pdu p = ini.command(slow.b, kCmdRead, 4096);
    p.set_u32(16, 6001);
    ini.send(p);
    REQUIRE(wait_for([&] { return dev.slow_reads == 1; }));  // on a worker, waiting
    p = ini.command(fast.b, kCmdRead, 4096);
    p.set_u32(16, 6002);
    ini.send(p);
    p = ini.command(tur.b, 0, 0);
    p.set_u32(16, 6003);
    ini.send(p);
    REQUIRE(w.until(ini, [&] { return w.got(6002) && w.got(6003); }));
    CHECK_FALSE(w.got(6001));
    CHECK(w.data[6002] == dev.bytes(0, 4096));
    release();
    REQUIRE(w.until(ini, [&] { return w.got(6001); }));
    CHECK(w.status[6001] == kStatusGood);
    CHECK(w.data[6001] == dev.bytes(1024 * 512, 4096));
  }

  SECTION("the initiator goes away with reads in flight: the connection ends, nothing hangs") {
    send_reads(8, 5000);
    REQUIRE(wait_for([&] { return dev.slow_reads == 4; }));
    release();
    // ~Initiator shuts the socket at once and joins the server thread,
    // which joins its workers (some may be mid-send).
  }
  release();
}
