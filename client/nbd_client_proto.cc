#include "nbd_client_proto.h"

#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "nbd/protocol.h"

namespace bootfleet::client {
namespace {

uint64_t be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}
std::span<const uint8_t> bytes_of(std::string_view v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size()};
}

}  // namespace

Hello parse_hello(std::span<const uint8_t> b) {
  if (b.size() < 18) throw std::runtime_error("a greeting of " + std::to_string(b.size()) + " bytes, not 18");
  if (be64(b.data()) != nbd::kNbdMagic || be64(b.data() + 8) != nbd::kOptMagic)
    throw std::runtime_error("not a fixed-newstyle NBD server (no NBDMAGIC IHAVEOPT greeting)");
  uint16_t flags = uint16_t(b[16] << 8 | b[17]);
  if (!(flags & nbd::kFlagFixedNewstyle)) throw std::runtime_error("the server is not fixed newstyle");
  return {(flags & nbd::kFlagNoZeroes) != 0};
}

uint64_t parse_export_reply(std::span<const uint8_t> b) {
  if (b.size() < 10) throw std::runtime_error("an export reply of " + std::to_string(b.size()) + " bytes, not 10");
  return be64(b.data());
}

std::vector<std::pair<uint16_t, std::string_view>> netlink_attrs(std::span<const uint8_t> b) {
  std::vector<std::pair<uint16_t, std::string_view>> out;
  size_t at = 0;
  while (b.size() - at >= NLA_HDRLEN) {
    nlattr a;
    memcpy(&a, b.data() + at, sizeof a);  // the buffer need not be aligned
    if (a.nla_len < NLA_HDRLEN || a.nla_len > b.size() - at) break;
    out.emplace_back(uint16_t(a.nla_type & NLA_TYPE_MASK),
                     std::string_view(reinterpret_cast<const char*>(b.data()) + at + NLA_HDRLEN, a.nla_len - NLA_HDRLEN));
    at += NLA_ALIGN(a.nla_len);
    if (at >= b.size()) break;
  }
  return out;
}

NbdFamily parse_family(std::span<const uint8_t> attributes) {
  NbdFamily f;
  for (auto& [type, value] : netlink_attrs(attributes)) {
    if (type == CTRL_ATTR_FAMILY_ID && value.size() >= 2) memcpy(&f.id, value.data(), 2);
    if (type != CTRL_ATTR_MCAST_GROUPS) continue;
    for (auto& group : netlink_attrs(bytes_of(value))) {
      std::string_view name;
      uint32_t id = 0;
      for (auto& [t, v] : netlink_attrs(bytes_of(group.second))) {
        if (t == CTRL_ATTR_MCAST_GRP_NAME) name = v.substr(0, v.find('\0'));
        if (t == CTRL_ATTR_MCAST_GRP_ID && v.size() >= 4) memcpy(&id, v.data(), 4);
      }
      if (name == NBD_GENL_MCAST_GROUP_NAME) f.group = id;
    }
  }
  return f;
}

int parse_link_dead(std::span<const uint8_t> attributes) {
  int index = -1;
  for (auto& [type, value] : netlink_attrs(attributes))
    if (type == NBD_ATTR_INDEX && value.size() >= 4) memcpy(&index, value.data(), 4);
  return index;
}

}  // namespace bootfleet::client
