// libFuzzer target for what an iSCSI peer controls outside the framing:
// the key=value text of Login and Text PDUs run through the negotiation,
// the binary values of CHAP keys, and CDBs with their Data-Out run on the
// SCSI disk. Input: one byte choosing the part, then its bytes.
#include <cstdint>
#include <cstring>
#include <span>

#include "iscsi/chap.h"
#include "iscsi/params.h"
#include "iscsi/scsi.h"
#include "support/memory_device.h"

using namespace bootfleet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t part = data[0] % 3;
  data += 1;
  size -= 1;
  if (part == 0) {
    std::vector<iscsi::KeyValue> keys;
    iscsi::parse_text(data, size, keys);
    iscsi::Negotiator n(iscsi::TargetLimits{});
    for (const auto& kv : keys) n.answer(kv.key, kv.value);
    n.declarations();
  } else if (part == 1) {
    std::string text(reinterpret_cast<const char*>(data), size);
    if (auto b = iscsi::decode_binary(text)) iscsi::encode_hex(*b);
    iscsi::parse_number(text, 0, UINT32_MAX);
  } else {
    if (size < 16) return 0;
    static auto device = std::make_shared<test::MemoryDevice>(1u << 20, false, true);
    static auto read_only = std::make_shared<test::MemoryDevice>(1u << 20, true, true);
    iscsi::LogicalUnit lu(data[1] & 0x80 ? read_only : device, iscsi::identity_for("fuzz", "iqn.fuzz"));
    iscsi::DataBuffer in;
    uint32_t produced = 0;
    const int64_t lun = data[15] & 0x01;
    // The data-out is what follows the CDB, at most what the command takes.
    auto prepared = lu.prepare(data, lun);
    std::span<const uint8_t> out(data + 16, size - 16);
    if (prepared.early.good() && out.size() >= prepared.data_out) out = out.first(prepared.data_out);
    lu.execute(data, lun, out, in, 1u << 16, produced);
  }
  return 0;
}
