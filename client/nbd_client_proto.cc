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

namespace {
void put_be(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(uint8_t(v >> (8 * i)));
}
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

std::string reply_name(uint32_t type) {
  switch (type) {
    case nbd::kRepErrUnsup: return "NBD_REP_ERR_UNSUP";
    case nbd::kRepErrPolicy: return "NBD_REP_ERR_POLICY";
    case nbd::kRepErrInvalid: return "NBD_REP_ERR_INVALID";
    case nbd::kRepErrPlatform: return "NBD_REP_ERR_PLATFORM";
    case nbd::kRepErrTlsReqd: return "NBD_REP_ERR_TLS_REQD";
    case nbd::kRepErrUnknown: return "NBD_REP_ERR_UNKNOWN";
    case nbd::kRepErrShutdown: return "NBD_REP_ERR_SHUTDOWN";
    case nbd::kRepErrBlockSizeReqd: return "NBD_REP_ERR_BLOCK_SIZE_REQD";
    case nbd::kRepErrTooBig: return "NBD_REP_ERR_TOO_BIG";
    default: return "reply type " + std::to_string(type);
  }
}
}  // namespace

std::vector<uint8_t> go_request(std::string_view name) {
  std::vector<uint8_t> out;
  put_be(out, nbd::kOptMagic, 8);
  put_be(out, nbd::kOptGo, 4);
  put_be(out, 4 + name.size() + 2, 4);
  put_be(out, name.size(), 4);
  out.insert(out.end(), name.begin(), name.end());
  put_be(out, 0, 2);  // no information requests: NBD_INFO_EXPORT comes anyway
  return out;
}

OptionReply parse_option_reply(std::span<const uint8_t> h, uint32_t option) {
  if (h.size() < 20) throw std::runtime_error("an option reply header of " + std::to_string(h.size()) + " bytes, not 20");
  if (be64(h.data()) != nbd::kOptReplyMagic) throw std::runtime_error("an option reply without its magic");
  if (be32(h.data() + 8) != option)
    throw std::runtime_error("a reply to option " + std::to_string(be32(h.data() + 8)) + ", not " + std::to_string(option));
  OptionReply r{be32(h.data() + 12), be32(h.data() + 16)};
  if (r.length > 65536) throw std::runtime_error("an option reply of " + std::to_string(r.length) + " bytes");
  return r;
}

bool GoReplies::add(uint32_t type, std::span<const uint8_t> data) {
  if (type & 0x80000000u) {
    std::string message(reinterpret_cast<const char*>(data.data()), data.size());
    throw std::runtime_error("refused (" + reply_name(type) + ")" + (message.empty() ? "" : ": " + message));
  }
  if (type == nbd::kRepInfo && data.size() >= 12 && (data[0] << 8 | data[1]) == nbd::kInfoExport) {
    size_ = be64(data.data() + 2);
    have_size_ = true;
  }
  if (type != nbd::kRepAck) return false;
  if (!have_size_) throw std::runtime_error("NBD_OPT_GO acknowledged without the export's size (NBD_INFO_EXPORT)");
  return true;
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
