// Windows registry hives, edited and read with hivex on a host copy of the
// hive file (the recipe executor downloads it from the guest, edits it here
// and uploads it back).
//
// Key paths are backslash-separated names below the hive's root
// ("Microsoft\Windows NT\CurrentVersion"; "" is the root) and match case-
// insensitively, as Windows does. Values are raw registry data: the
// encode_* helpers build the usual encodings (UTF-16LE strings with their
// terminator, little-endian numbers).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bootfleet::guest {

// Registry value types (winnt.h numbering).
constexpr uint32_t kRegSz = 1, kRegExpandSz = 2, kRegBinary = 3, kRegDword = 4, kRegMultiSz = 7, kRegQword = 11;

struct RegistryValue {
  uint32_t type = kRegSz;
  std::vector<uint8_t> data;
  bool operator==(const RegistryValue&) const = default;
};

// Every key (even those without values) -> its values by name ("" is the
// key's default value). Key paths as above, in the hive's own spelling.
using RegistryDump = std::map<std::string, std::map<std::string, RegistryValue>>;

class Hive {
 public:
  // Throws util::Error naming the file when it is not a hive.
  Hive(const std::string& path, bool writable);
  ~Hive();
  Hive(const Hive&) = delete;
  Hive& operator=(const Hive&) = delete;

  // Creates missing keys on the way.
  void set_value(const std::string& key, const std::string& name, const RegistryValue& value);
  // False when there was nothing to delete.
  bool delete_value(const std::string& key, const std::string& name);
  bool delete_key(const std::string& key);
  // Writes the changes back to the file.
  void commit();

  RegistryDump dump() const;

 private:
  struct Handle;
  uint64_t find_key(const std::string& key, bool create);  // 0 when absent
  Handle* h_;
  std::string path_;
};

std::vector<uint8_t> encode_string(const std::string& utf8);  // REG_SZ, REG_EXPAND_SZ
std::vector<uint8_t> encode_multi_string(const std::vector<std::string>& utf8);
std::vector<uint8_t> encode_dword(uint32_t v);
std::vector<uint8_t> encode_qword(uint64_t v);
// A readable rendering for diffs: "dword 0x00000001", "string \"C:\\x\"", …
std::string describe(const RegistryValue& value);

}  // namespace bootfleet::guest
