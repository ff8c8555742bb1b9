#include "guest/registry.h"

#include <hivex.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::guest {

struct Hive::Handle {
  hive_h* h = nullptr;
};

namespace {

using util::Error;

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : key) {
    if (c == '\\') {
      if (!cur.empty()) parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(cur);
  return parts;
}

std::string errno_text() { return errno ? std::strerror(errno) : "not found"; }

}  // namespace

Hive::Hive(const std::string& path, bool writable) : h_(new Handle), path_(path) {
  h_->h = hivex_open(path.c_str(), writable ? HIVEX_OPEN_WRITE : 0);
  if (!h_->h) {
    int err = errno;
    delete h_;
    throw Error(path + ": not a registry hive (" + std::strerror(err) + ")");
  }
}

Hive::~Hive() {
  if (h_->h) hivex_close(h_->h);
  delete h_;
}

uint64_t Hive::find_key(const std::string& key, bool create) {
  hive_node_h node = hivex_root(h_->h);
  if (!node) throw Error(path_ + ": the hive has no root key");
  std::string walked;
  for (const auto& part : split_key(key)) {
    walked += (walked.empty() ? "" : "\\") + part;
    errno = 0;
    hive_node_h child = hivex_node_get_child(h_->h, node, part.c_str());
    if (!child) {
      if (errno != 0) throw Error(path_ + ": key '" + walked + "': " + errno_text());
      if (!create) return 0;
      child = hivex_node_add_child(h_->h, node, part.c_str());
      if (!child) throw Error(path_ + ": cannot create key '" + walked + "': " + errno_text());
    }
    node = child;
  }
  return node;
}

void Hive::set_value(const std::string& key, const std::string& name, const RegistryValue& value) {
  hive_node_h node = find_key(key, true);
  hive_set_value v;
  v.key = const_cast<char*>(name.c_str());
  v.t = static_cast<hive_type>(value.type);
  v.len = value.data.size();
  v.value = reinterpret_cast<char*>(const_cast<uint8_t*>(value.data.data()));
  if (hivex_node_set_value(h_->h, node, &v, 0) == -1) {
    throw Error(path_ + ": cannot set '" + key + "\\" + name + "': " + errno_text());
  }
}

bool Hive::delete_value(const std::string& key, const std::string& name) {
  hive_node_h node = find_key(key, false);
  if (!node) return false;
  // hivex deletes a value by rewriting the key's value list without it.
  hive_value_h* values = hivex_node_values(h_->h, node);
  if (!values) throw Error(path_ + ": cannot read the values of '" + key + "': " + errno_text());
  std::vector<std::string> names;
  std::vector<RegistryValue> kept;
  bool found = false;
  for (hive_value_h* v = values; *v; ++v) {
    char* k = hivex_value_key(h_->h, *v);
    std::string vname = k ? k : "";
    std::free(k);
    if (strcasecmp(vname.c_str(), name.c_str()) == 0) {
      found = true;
      continue;
    }
    hive_type t;
    size_t len;
    char* data = hivex_value_value(h_->h, *v, &t, &len);
    if (!data) {
      std::free(values);
      throw Error(path_ + ": cannot read '" + key + "\\" + vname + "': " + errno_text());
    }
    names.push_back(vname);
    kept.push_back({static_cast<uint32_t>(t), std::vector<uint8_t>(data, data + len)});
    std::free(data);
  }
  std::free(values);
  if (!found) return false;
  std::vector<hive_set_value> sets(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    sets[i].key = const_cast<char*>(names[i].c_str());
    sets[i].t = static_cast<hive_type>(kept[i].type);
    sets[i].len = kept[i].data.size();
    sets[i].value = reinterpret_cast<char*>(kept[i].data.data());
  }
  if (hivex_node_set_values(h_->h, node, sets.size(), sets.data(), 0) == -1) {
    throw Error(path_ + ": cannot delete '" + key + "\\" + name + "': " + errno_text());
  }
  return true;
}

bool Hive::delete_key(const std::string& key) {
  if (split_key(key).empty()) throw Error(path_ + ": the root key cannot be deleted");
  hive_node_h node = find_key(key, false);
  if (!node) return false;
  if (hivex_node_delete_child(h_->h, node) == -1) throw Error(path_ + ": cannot delete key '" + key + "': " + errno_text());
  return true;
}

void Hive::commit() {
  if (hivex_commit(h_->h, nullptr, 0) == -1) throw Error(path_ + ": cannot write the hive: " + errno_text());
}

RegistryDump Hive::dump() const {
  RegistryDump out;
  // Depth-first over keys; a visit limit guards against a corrupt hive
  // whose keys form a cycle.
  std::vector<std::pair<hive_node_h, std::string>> pending{{hivex_root(h_->h), ""}};
  size_t visits = 0;
  while (!pending.empty()) {
    auto [node, path] = pending.back();
    pending.pop_back();
    if (!node || ++visits > 1000000) break;
    auto& values = out[path];
    if (hive_value_h* vs = hivex_node_values(h_->h, node)) {
      for (hive_value_h* v = vs; *v; ++v) {
        char* k = hivex_value_key(h_->h, *v);
        hive_type t;
        size_t len;
        char* data = hivex_value_value(h_->h, *v, &t, &len);
        if (k && data) values[k] = {static_cast<uint32_t>(t), std::vector<uint8_t>(data, data + len)};
        std::free(k);
        std::free(data);
      }
      std::free(vs);
    }
    if (hive_node_h* children = hivex_node_children(h_->h, node)) {
      for (hive_node_h* c = children; *c; ++c) {
        char* name = hivex_node_name(h_->h, *c);
        if (name) pending.emplace_back(*c, path.empty() ? std::string(name) : path + "\\" + name);
        std::free(name);
      }
      std::free(children);
    }
  }
  return out;
}

std::vector<uint8_t> encode_string(const std::string& utf8) {
  std::string s = util::utf8_to_utf16(utf8, false);
  std::vector<uint8_t> out(s.begin(), s.end());
  out.push_back(0);
  out.push_back(0);
  return out;
}

std::vector<uint8_t> encode_multi_string(const std::vector<std::string>& utf8) {
  std::vector<uint8_t> out;
  for (const auto& s : utf8) {
    auto e = encode_string(s);
    out.insert(out.end(), e.begin(), e.end());
  }
  out.push_back(0);
  out.push_back(0);
  return out;
}

std::vector<uint8_t> encode_dword(uint32_t v) {
  std::vector<uint8_t> out(4);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

std::vector<uint8_t> encode_qword(uint64_t v) {
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out;
}

namespace {

std::string decode_utf16_strings(const std::vector<uint8_t>& data, bool multi) {
  std::string out;
  size_t start = 0;
  for (size_t i = 0; i + 1 < data.size(); i += 2) {
    if (data[i] == 0 && data[i + 1] == 0) {
      std::string s = util::utf16_to_utf8({data.data() + start, i - start}, false);
      if (!multi) return "\"" + s + "\"";
      if (i == start) break;  // the list's final terminator
      out += (out.empty() ? "" : ", ") + ("\"" + s + "\"");
      start = i + 2;
    }
  }
  if (!multi) return "\"" + util::utf16_to_utf8({data.data(), data.size() & ~size_t{1}}, false) + "\"";
  return "[" + out + "]";
}

}  // namespace

std::string describe(const RegistryValue& v) {
  char buf[64];
  switch (v.type) {
    case kRegSz: return "string " + decode_utf16_strings(v.data, false);
    case kRegExpandSz: return "expand-string " + decode_utf16_strings(v.data, false);
    case kRegMultiSz: return "multi-string " + decode_utf16_strings(v.data, true);
    case kRegDword:
      if (v.data.size() == 4) {
        uint32_t x = 0;
        for (int i = 3; i >= 0; --i) x = (x << 8) | v.data[static_cast<size_t>(i)];
        std::snprintf(buf, sizeof buf, "dword 0x%08x (%u)", x, x);
        return buf;
      }
      break;
    case kRegQword:
      if (v.data.size() == 8) {
        uint64_t x = 0;
        for (int i = 7; i >= 0; --i) x = (x << 8) | v.data[static_cast<size_t>(i)];
        std::snprintf(buf, sizeof buf, "qword 0x%016llx", static_cast<unsigned long long>(x));
        return buf;
      }
      break;
    default: break;
  }
  std::string hex = v.type == kRegBinary ? "binary" : "type " + std::to_string(v.type) + " hex:";
  for (size_t i = 0; i < v.data.size() && i < 64; ++i) {
    std::snprintf(buf, sizeof buf, " %02x", v.data[i]);
    hex += buf;
  }
  if (v.data.size() > 64) hex += " … (" + std::to_string(v.data.size()) + " bytes)";
  return hex;
}

}  // namespace bootfleet::guest
