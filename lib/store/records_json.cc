#include "store/records_json.h"

#include "store/channels_json.h"
#include "util/time.h"

namespace bootfleet::store {

using nlohmann::json;

namespace {
template <typename T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}
}  // namespace

json image_json(const ImageInfo& i) {
  return {{"name", i.name},
          {"versions", i.version_count},
          {"active", or_null(i.active)},
          {"previous", or_null(i.previous)},
          {"latest", or_null(i.latest)},
          {"virtual_size", i.size},
          {"size", i.latest ? json(i.size) : json(nullptr)},
          {"bytes_on_disk", i.bytes_on_disk},
          {"boot_mode", boot_mode_name(i.boot_mode)},
          {"created", util::format_utc(i.created_at)},
          {"created_at", i.created_at}};
}

json client_json(Store& s, const ClientInfo& c) {
  // A client whose image is gone from the store is still listed, unbootable.
  json effective = nullptr;
  try {
    effective = boot_mode_name(s.effective_boot_mode(c));
  } catch (const util::Error&) {
  }
  json j = {{"mac", c.mac},
            {"name", c.name},
            {"image", c.image},
            {"cmdline", or_null(c.cmdline)},
            {"cache_quota", or_null(c.cache_quota)},
            {"boot_mode", c.boot_mode ? json(boot_mode_name(*c.boot_mode)) : json(nullptr)},
            {"effective_boot_mode", effective},
            {"created", util::format_utc(c.created_at)},
            {"created_at", c.created_at}};
  add_placement_json(c, j);
  try {
    j["boots"] = resolution_json(s.resolve_boot(c));
  } catch (const util::Error& e) {  // e.g. nothing published yet: why it cannot boot
    j["boots"] = nullptr;
    j["boot_error"] = e.what();
  }
  return j;
}

}  // namespace bootfleet::store
