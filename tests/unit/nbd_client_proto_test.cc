// bootfleet-nbd-client's parsers (client/nbd_client_proto.h) on the bytes
// a real server and a real kernel send, and on what they must refuse.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <stdexcept>
#include <string>
#include <vector>

#include "nbd_client_proto.h"

using namespace bootfleet;

namespace {

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// One netlink attribute, padded to 4 bytes, as the kernel lays it out.
std::vector<uint8_t> nla(uint16_t type, const std::vector<uint8_t>& value) {
  uint16_t len = uint16_t(4 + value.size());
  std::vector<uint8_t> out(4);
  memcpy(out.data(), &len, 2);
  memcpy(out.data() + 2, &type, 2);
  out.insert(out.end(), value.begin(), value.end());
  out.resize((out.size() + 3) & ~size_t(3));
  return out;
}
std::vector<uint8_t> u32(uint32_t v) {
  std::vector<uint8_t> out(4);
  memcpy(out.data(), &v, 4);
  return out;
}
std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("nbd client: a fixed-newstyle greeting, and what is not one", "[nbd_client]") {
  auto hello = bytes("NBDMAGICIHAVEOPT");
  hello.push_back(0), hello.push_back(3);
  CHECK(client::parse_hello(hello).no_zeroes);
  hello[17] = 1;
  CHECK_FALSE(client::parse_hello(hello).no_zeroes);
  hello[17] = 2;  // not fixed newstyle
  CHECK_THROWS_WITH(client::parse_hello(hello), Catch::Contains("not fixed newstyle"));
  auto oldstyle = bytes("NBDMAGIC");
  oldstyle.insert(oldstyle.end(), {0, 0, 0x42, 0x02, 0x81, 0x86, 0x12, 0x53, 0, 0});
  CHECK_THROWS_WITH(client::parse_hello(oldstyle), Catch::Contains("not a fixed-newstyle NBD server"));
  CHECK_THROWS_WITH(client::parse_hello(std::vector<uint8_t>(17)), Catch::Contains("17 bytes, not 18"));
}

TEST_CASE("nbd client: NBD_OPT_GO, its replies, its refusals", "[nbd_client]") {
  auto go = client::go_request("lab/pc01");
  REQUIRE(go.size() == 16 + 4 + 8 + 2);
  CHECK(std::string(go.begin(), go.begin() + 8) == "IHAVEOPT");
  CHECK(go[11] == 7);   // NBD_OPT_GO
  CHECK(go[15] == 14);  // 4 + 8 + 2 bytes of data
  CHECK(std::string(go.begin() + 20, go.begin() + 28) == "lab/pc01");

  auto header = [](uint32_t option, uint32_t type, uint32_t length) {
    std::vector<uint8_t> h = {0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9};
    for (uint32_t v : {option, type, length})
      for (int i = 3; i >= 0; --i) h.push_back(uint8_t(v >> (8 * i)));
    return h;
  };
  auto info = client::parse_option_reply(header(7, 3, 12), 7);
  CHECK(info.type == 3);
  CHECK(info.length == 12);
  CHECK_THROWS_WITH(client::parse_option_reply(header(6, 3, 12), 7), Catch::Contains("a reply to option 6, not 7"));
  CHECK_THROWS_WITH(client::parse_option_reply(header(7, 3, 70000), 7), Catch::Contains("70000 bytes"));
  auto bad = header(7, 1, 0);
  bad[0] = 1;
  CHECK_THROWS_WITH(client::parse_option_reply(bad, 7), Catch::Contains("without its magic"));

  client::GoReplies replies;
  std::vector<uint8_t> export_info = {0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x01, 0xed};  // NBD_INFO_EXPORT, 256 MiB
  CHECK_FALSE(replies.add(3, export_info));
  CHECK(replies.add(1, {}));
  CHECK(replies.size() == 0x10000000ull);

  client::GoReplies no_size;
  CHECK_THROWS_WITH(no_size.add(1, {}), Catch::Contains("without the export's size"));
  client::GoReplies refused;
  CHECK_THROWS_WITH(refused.add(0x80000006u, bytes("session lab/pc01 has ended (reset)")),
                    Catch::Contains("refused (NBD_REP_ERR_UNKNOWN): session lab/pc01 has ended (reset)"));
}

TEST_CASE("nbd client: the nbd family and its multicast group from a GETFAMILY reply", "[nbd_client]") {
  auto other = cat(nla(CTRL_ATTR_MCAST_GRP_NAME, bytes(std::string("other_group") + '\0')),
                   nla(CTRL_ATTR_MCAST_GRP_ID, u32(7)));
  auto ours = cat(nla(CTRL_ATTR_MCAST_GRP_NAME, bytes(std::string(NBD_GENL_MCAST_GROUP_NAME) + '\0')),
                  nla(CTRL_ATTR_MCAST_GRP_ID, u32(33)));
  auto groups = nla(CTRL_ATTR_MCAST_GROUPS | NLA_F_NESTED,
                    cat(nla(1 | NLA_F_NESTED, other), nla(2 | NLA_F_NESTED, ours)));
  auto reply = cat(cat(nla(CTRL_ATTR_FAMILY_NAME, bytes(std::string("nbd") + '\0')), nla(CTRL_ATTR_FAMILY_ID, {30, 0})),
                   groups);
  auto f = client::parse_family(reply);
  CHECK(f.id == 30);
  CHECK(f.group == 33);
  // Without the group (a kernel without nbd's events) the group is 0.
  auto no_group = client::parse_family(nla(CTRL_ATTR_FAMILY_ID, {30, 0}));
  CHECK(no_group.id == 30);
  CHECK(no_group.group == 0);
}

TEST_CASE("nbd client: a link-dead event's device, and malformed attributes", "[nbd_client]") {
  CHECK(client::parse_link_dead(nla(NBD_ATTR_INDEX, u32(3))) == 3);
  CHECK(client::parse_link_dead(nla(NBD_ATTR_SIZE_BYTES, u32(3))) == -1);
  auto a = nla(NBD_ATTR_INDEX, u32(3));
  a[0] = 200;  // a length past the end: the list ends there
  CHECK(client::netlink_attrs(a).empty());
  CHECK(client::parse_link_dead(a) == -1);
  a[0] = 2;  // a length below the header's
  CHECK(client::netlink_attrs(a).empty());
  // A good attribute followed by a truncated one: only the first.
  auto two = cat(nla(NBD_ATTR_INDEX, u32(1)), {8, 0, 1});
  CHECK(client::netlink_attrs(two).size() == 1);
}
