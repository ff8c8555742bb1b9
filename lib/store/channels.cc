// Channels, groups, pins, scheduled publishes and boot resolution: see the
// design note in channels.h and docs/channels.md.
#include "store/channels.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <set>

#include "store/store.h"
#include "util/error.h"
#include "util/time.h"

namespace bootfleet::store {

using util::Error;

namespace {

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void validate_word(const std::string& name, const std::string& what) {
  if (name.empty() || name.size() > 64) throw Error(what + " '" + name.substr(0, 80) + "': 1 to 64 characters");
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (!ok) {
      throw Error(what + " '" + name + "': '" + std::string(1, c) +
                  "' is not allowed; use letters, digits, '.', '_' and '-'");
    }
  }
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    throw Error(what + " '" + name + "': must start with a letter or a digit");
  }
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

std::string at(const std::string& image, int64_t n) { return image + "@" + std::to_string(n); }

const char* kGroupColumns = "name, image, channel, pin, created_at";

const char* kScheduleColumns =
    "s.id, i.name, s.version, s.channel, s.at_ms, s.created_by, s.created_ms, s.state, s.done_ms, s.result";

Schedule read_schedule(Statement& st) {
  return {st.int64(0), st.text(1), st.int64(2), st.text(3), st.int64(4), st.text(5),
          st.int64(6), st.text(7), st.opt_int64(8), st.opt_text(9)};
}

}  // namespace

void validate_channel_name(const std::string& name) { validate_word(name, "channel"); }
void validate_group_name(const std::string& name) {
  validate_word(name, "group");
  if (name == "none") throw Error("group 'none': the word means \"no group\" (client set --group none); choose another name");
}

std::string BootResolution::describe() const {
  std::string what = at(image, version);
  if (source == "client pin") return what + " (pinned on the client)";
  if (source == "group pin") return what + " (pinned on group " + group.value_or("?") + ")";
  if (source == "channel") return what + " (channel " + channel + " of group " + group.value_or("?") + ")";
  return what + " (production" + (group ? " for group " + *group : std::string()) + ")";
}

int64_t parse_schedule_time(const std::string& text, int64_t now_ms, const std::string& what) {
  const std::string forms =
      "; use 2026-11-26T19:00:00Z, '2026-11-26 19:00' (UTC), +90s, +15m, +2h, +1d or @UNIXSECONDS";
  if (text.empty()) throw Error(what + ": empty time" + forms);
  auto all_digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 12 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (text[0] == '+') {
    std::string num = text.substr(1);
    char unit = 's';
    if (!num.empty() && std::isalpha(static_cast<unsigned char>(num.back()))) {
      unit = num.back();
      num.pop_back();
    }
    // At most 9 digits: a billion days still fits in int64 milliseconds.
    if (!all_digits(num) || num.size() > 9) throw Error(what + ": '" + text + "' is not a time" + forms);
    int64_t n = std::stoll(num);
    int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
    if (!scale) throw Error(what + ": '" + text + "' has an unknown unit '" + std::string(1, unit) + "'" + forms);
    return now_ms + n * scale * 1000;
  }
  if (text[0] == '@') {
    if (!all_digits(text.substr(1))) throw Error(what + ": '" + text + "' is not a time" + forms);
    return std::stoll(text.substr(1)) * 1000;
  }
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char sep = 0;
  int consumed = 0;
  int got = std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &consumed);
  if (got < 6 || (sep != 'T' && sep != ' ')) throw Error(what + ": '" + text + "' is not a time" + forms);
  std::string rest = text.substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest[0] == ':') {
    int n = 0;
    if (std::sscanf(rest.c_str(), ":%2d%n", &sec, &n) != 1) throw Error(what + ": '" + text + "': bad seconds" + forms);
    rest = rest.substr(static_cast<size_t>(n));
  }
  if (!rest.empty() && rest != "Z") {
    throw Error(what + ": '" + text + "': times are UTC; write them with Z or without a zone" + forms);
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60 || y < 1970) {
    throw Error(what + ": '" + text + "' is not a valid date and time" + forms);
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// Boot modes sit with resolution: both answer "what does this PC boot".
BootMode Store::effective_boot_mode(const ClientInfo& client) {
  if (client.boot_mode) return *client.boot_mode;
  std::string image_name = client.image;
  if (client.group) image_name = group(*client.group).image;
  return image(image_name).boot_mode;
}

// Channels.

std::vector<int64_t> Store::channel_stack(int64_t image_id, const std::string& channel) {
  // Replaying the channel's history: a publish or promote pushes its version,
  // a rollback pops back to the one below (or, with --to, pushes its target).
  // The top is the channel's version; the one below is where the next
  // rollback goes.
  auto st = db_->prepare("SELECT version, action FROM activations WHERE image_id = ? AND channel = ? ORDER BY id");
  st.bind(1, image_id).bind(2, channel);
  std::vector<int64_t> stack;
  while (st.step()) {
    int64_t v = st.int64(0);
    if (st.text(1) == "rollback" && stack.size() >= 2 && stack[stack.size() - 2] == v) {
      stack.pop_back();
    } else {
      stack.push_back(v);
    }
  }
  return stack;
}

std::vector<std::string> Store::channel_names(int64_t image_id) {
  std::vector<std::string> names{kProductionChannel, kTestChannel};
  auto st = db_->prepare("SELECT name FROM channels WHERE image_id = ? ORDER BY name");
  st.bind(1, image_id);
  while (st.step()) {
    std::string n = st.text(0);
    if (n != kTestChannel) names.push_back(n);
  }
  return names;
}

std::optional<int64_t> Store::channel_version(int64_t image_id, const std::string& channel) {
  if (channel == kProductionChannel) {
    auto st = db_->prepare("SELECT active_version FROM images WHERE id = ?");
    st.bind(1, image_id);
    return st.step() ? st.opt_int64(0) : std::nullopt;
  }
  auto st = db_->prepare("SELECT version FROM channels WHERE image_id = ? AND name = ?");
  st.bind(1, image_id).bind(2, channel);
  return st.step() ? st.opt_int64(0) : std::nullopt;
}

void Store::check_channel(int64_t image_id, const std::string& image, const std::string& channel, bool create) {
  validate_channel_name(channel);
  auto names = channel_names(image_id);
  if (create || std::find(names.begin(), names.end(), channel) != names.end()) return;
  throw NotFound(image + ": no channel '" + channel + "'; channels: " + join(names) +
                 " (publish with --channel " + channel + " --new-channel to make it)");
}

std::vector<ChannelInfo> Store::channels(const std::string& name) {
  image(name);  // throws, listing the images
  int64_t id = image_id(name, false, 0);
  std::vector<ChannelInfo> out;
  for (const auto& c : channel_names(id)) {
    auto stack = channel_stack(id, c);
    ChannelInfo info{name, c, channel_version(id, c), std::nullopt};
    if (stack.size() >= 2) info.previous = stack[stack.size() - 2];
    out.push_back(std::move(info));
  }
  return out;
}

ChannelInfo Store::channel(const std::string& name, const std::string& channel_name) {
  auto all = channels(name);
  for (auto& c : all)
    if (c.name == channel_name) return c;
  check_channel(image_id(name, false, 0), name, channel_name, false);  // throws, listing them
  return {};
}

ActivationResult Store::set_channel_version(int64_t image_id, const std::string& image, const std::string& channel,
                                            int64_t version, const std::string& action, const std::string& by) {
  auto exists = db_->prepare("SELECT 1 FROM versions WHERE image_id = ? AND number = ?");
  exists.bind(1, image_id).bind(2, version);
  if (!exists.step()) this->version({image, version, false});  // throws, listing the versions
  std::optional<int64_t> before = channel_version(image_id, channel);
  if (before == version) return {before, version, false};
  if (channel == kProductionChannel) {
    db_->prepare("UPDATE images SET active_version = ? WHERE id = ?").bind(1, version).bind(2, image_id).run();
  } else {
    db_->prepare("INSERT INTO channels (image_id, name, version) VALUES (?, ?, ?) "
                 "ON CONFLICT (image_id, name) DO UPDATE SET version = excluded.version")
        .bind(1, image_id).bind(2, channel).bind(3, version).run();
  }
  db_->prepare("INSERT INTO activations (image_id, version, previous, action, at_ms, by, channel) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .bind(1, image_id).bind(2, version).bind(3, before).bind(4, action).bind(5, now_unix_ms()).bind(6, by)
      .bind(7, channel).run();
  return {before, version, true};
}

ActivationResult Store::publish_channel(const VersionRef& ref, const std::string& channel_name, const std::string& by,
                                        bool create) {
  if (!ref.number) throw Error(ref.text() + ": name the version to publish, e.g. " + ref.image + "@3");
  Transaction tx(*db_);
  image(ref.image);
  int64_t id = image_id(ref.image, false, 0);
  check_channel(id, ref.image, channel_name, create);
  auto r = set_channel_version(id, ref.image, channel_name, *ref.number, "publish", by);
  tx.commit();
  return r;
}

ActivationResult Store::promote(const std::string& name, const std::string& from, const std::string& to,
                                const std::string& by) {
  Transaction tx(*db_);
  image(name);
  int64_t id = image_id(name, false, 0);
  check_channel(id, name, from, false);
  check_channel(id, name, to, false);
  if (from == to) throw Error(name + ": promote from '" + from + "' to itself; name two channels");
  auto v = channel_version(id, from);
  if (!v) {
    throw Error(name + ": channel '" + from + "' has no version yet; publish one with 'imgtool publish " + name +
                "@N --channel " + from + "'");
  }
  auto r = set_channel_version(id, name, to, *v, "promote", by);
  tx.commit();
  return r;
}

ActivationResult Store::rollback_channel(const std::string& name, const std::string& channel_name,
                                         std::optional<int64_t> to, const std::string& by) {
  if (channel_name == kProductionChannel) return rollback(name, to, by);
  Transaction tx(*db_);
  image(name);
  int64_t id = image_id(name, false, 0);
  check_channel(id, name, channel_name, false);
  std::optional<int64_t> target = to;
  if (!target) {
    auto stack = channel_stack(id, channel_name);
    if (stack.size() < 2) {
      throw Error(name + ": nothing to roll back to on channel '" + channel_name + "': " +
                  (stack.empty() ? std::string("nothing was ever published to it")
                                 : "no version was on it before @" + std::to_string(stack.back())) +
                  " (see 'imgtool history " + name + "'; 'rollback --to N' sets any version)");
    }
    target = stack[stack.size() - 2];
  }
  auto exists = db_->prepare("SELECT 1 FROM versions WHERE image_id = ? AND number = ?");
  exists.bind(1, id).bind(2, *target);
  if (!exists.step()) {
    if (to) version({name, to, false});  // throws, listing the versions
    throw Error(at(name, *target) + ": cannot roll back to it: the version was pruned");
  }
  auto r = set_channel_version(id, name, channel_name, *target, "rollback", by);
  tx.commit();
  return r;
}

// Groups.

namespace {
GroupInfo read_group(Statement& st) {
  GroupInfo g;
  g.name = st.text(0);
  g.image = st.text(1);
  g.channel = st.text(2);
  g.pin = st.opt_int64(3);
  g.created_at = st.int64(4);
  return g;
}
}  // namespace

std::vector<GroupInfo> Store::groups() {
  auto st = db_->prepare(std::string("SELECT ") + kGroupColumns + " FROM groups ORDER BY name");
  std::vector<GroupInfo> out;
  while (st.step()) out.push_back(read_group(st));
  auto members = db_->prepare("SELECT group_name, name FROM clients WHERE group_name IS NOT NULL ORDER BY name");
  while (members.step()) {
    for (auto& g : out)
      if (g.name == members.text(0)) g.members.push_back(members.text(1));
  }
  return out;
}

GroupInfo Store::group(const std::string& name) {
  // One row and its members (every boot script of a grouped client asks).
  auto st = db_->prepare(std::string("SELECT ") + kGroupColumns + " FROM groups WHERE name = ?");
  st.bind(1, name);
  if (st.step()) {
    GroupInfo g = read_group(st);
    auto members = db_->prepare("SELECT name FROM clients WHERE group_name = ? ORDER BY name");
    members.bind(1, name);
    while (members.step()) g.members.push_back(members.text(0));
    return g;
  }
  std::vector<std::string> names;
  for (const auto& g : groups()) names.push_back(g.name);
  throw NotFound("no group '" + name + "'" +
                 (names.empty() ? std::string("; there is no group yet ('imgtool client group add NAME --image IMAGE')")
                                : "; groups: " + join(names)));
}

GroupInfo Store::add_group(const std::string& name, const std::string& image_name, const std::string& channel_name,
                           std::optional<int64_t> pin) {
  validate_group_name(name);
  Transaction tx(*db_);
  auto same = db_->prepare("SELECT 1 FROM groups WHERE name = ?");
  same.bind(1, name);
  if (same.step()) throw Error("group '" + name + "' already exists; change it with 'imgtool client group set " + name + " …'");
  try {
    image(image_name);
    check_channel(image_id(image_name, false, 0), image_name, channel_name, false);
    if (pin) version({image_name, pin, false});  // a pruned or unknown version is refused, listing the versions
  } catch (const Error& e) {
    throw Error("group '" + name + "': " + e.what());
  }
  int64_t now = now_unix_ms() / 1000;
  db_->prepare("INSERT INTO groups (name, image, channel, pin, created_at) VALUES (?, ?, ?, ?, ?)")
      .bind(1, name).bind(2, image_name).bind(3, channel_name).bind(4, pin).bind(5, now).run();
  tx.commit();
  return group(name);
}

GroupInfo Store::set_group(const std::string& name, const GroupChange& change) {
  Transaction tx(*db_);
  GroupInfo g = group(name);
  try {
    if (change.image && *change.image != g.image) {
      image(*change.image);
      g.image = *change.image;
      g.pin.reset();  // a number of the old image; a new pin may come below
    }
    if (change.channel) g.channel = *change.channel;
    if (change.pin) g.pin = *change.pin;
    check_channel(image_id(g.image, false, 0), g.image, g.channel, false);
    if (g.pin) version({g.image, g.pin, false});
  } catch (const Error& e) {
    throw Error("group '" + name + "': " + e.what());
  }
  db_->prepare("UPDATE groups SET image = ?, channel = ?, pin = ? WHERE name = ?")
      .bind(1, g.image).bind(2, g.channel).bind(3, g.pin).bind(4, name).run();
  // Members follow the group's image (their own pins were of the old one).
  db_->prepare("UPDATE clients SET image = ?, pin = CASE WHEN image = ? THEN pin ELSE NULL END WHERE group_name = ?")
      .bind(1, g.image).bind(2, g.image).bind(3, name).run();
  tx.commit();
  return group(name);
}

void Store::remove_group(const std::string& name) {
  Transaction tx(*db_);
  GroupInfo g = group(name);
  if (!g.members.empty()) {
    throw Error("group '" + name + "' still has clients: " + join(g.members) +
                "; move them out first ('imgtool client set CLIENT --group none')");
  }
  db_->prepare("DELETE FROM groups WHERE name = ?").bind(1, name).run();
  tx.commit();
}

ClientInfo Store::set_client_group(const std::string& key, const std::optional<std::string>& group_name) {
  Transaction tx(*db_);
  ClientInfo c = client(key);
  if (group_name) {
    GroupInfo g = group(*group_name);
    if (g.image != c.image) c.pin.reset();
    c.image = g.image;
  }
  c.group = group_name;
  db_->prepare("UPDATE clients SET group_name = ?, image = ?, pin = ? WHERE mac = ?")
      .bind(1, c.group).bind(2, c.image).bind(3, c.pin).bind(4, c.mac).run();
  tx.commit();
  return c;
}

ClientInfo Store::set_client_pin(const std::string& key, std::optional<int64_t> pin) {
  Transaction tx(*db_);
  ClientInfo c = client(key);
  if (pin) {
    try {
      version({c.image, pin, false});  // a pruned or unknown version is refused, listing the versions
    } catch (const Error& e) {
      throw Error("client " + c.name + ": cannot pin: " + e.what());
    }
  }
  c.pin = pin;
  db_->prepare("UPDATE clients SET pin = ? WHERE mac = ?").bind(1, c.pin).bind(2, c.mac).run();
  tx.commit();
  return c;
}

// Resolution.

BootResolution Store::resolve_image(const std::string& image_name) {
  VersionInfo v = version({image_name, std::nullopt, false});  // throws: no image, or nothing published
  return {image_name, v.number, "production", kProductionChannel, std::nullopt};
}

BootResolution Store::resolve_boot(const ClientInfo& client) {
  // (A maintenance session's override goes first, once it exists: a client
  // in maintenance boots its session's version whatever else is set.)
  std::optional<GroupInfo> g;
  if (client.group) g = group(*client.group);
  BootResolution r;
  r.image = g ? g->image : client.image;
  r.group = client.group;
  const std::string who = "client " + client.name;
  auto must_exist = [&](int64_t n, const std::string& what) {
    try {
      return version({r.image, n, false}).number;
    } catch (const Error& e) {
      throw Error(who + ": " + what + ": " + e.what());
    }
  };
  if (client.pin) {
    r.version = must_exist(*client.pin, "its pin");
    r.source = "client pin";
    return r;
  }
  if (g && g->pin) {
    r.version = must_exist(*g->pin, "the pin of group " + g->name);
    r.source = "group pin";
    return r;
  }
  image(r.image);  // throws, listing the images
  int64_t id = image_id(r.image, false, 0);
  if (g && g->channel != kProductionChannel) {
    if (auto v = channel_version(id, g->channel)) {
      r.version = must_exist(*v, "channel " + g->channel);
      r.source = "channel";
      r.channel = g->channel;
      return r;
    }
    // An empty channel (a fresh test) follows production.
  }
  auto v = channel_version(id, kProductionChannel);
  if (!v) {
    throw Error(who + ": image '" + r.image + "' has no production version; publish one with 'imgtool publish " +
                r.image + "@N'");
  }
  r.version = must_exist(*v, "production");
  r.source = "production";
  return r;
}

// Schedules.

Schedule Store::add_schedule(const VersionRef& ref, const std::string& channel_name, int64_t at_ms,
                             const std::string& by, bool create_channel) {
  if (!ref.number) throw Error(ref.text() + ": name the version to publish, e.g. " + ref.image + "@3");
  int64_t now = now_unix_ms();
  if (at_ms <= now) {
    throw Error(ref.text() + ": --at " + util::format_utc_ms(at_ms) + " is not in the future (now is " +
                util::format_utc_ms(now) + "); publish without --at to do it now");
  }
  Transaction tx(*db_);
  version(ref);  // throws, listing the versions
  int64_t id = image_id(ref.image, false, 0);
  check_channel(id, ref.image, channel_name, create_channel);
  if (create_channel && channel_name != kProductionChannel) {
    // Made now (empty), so that groups can follow it before it fires.
    db_->prepare("INSERT OR IGNORE INTO channels (image_id, name, version) VALUES (?, ?, NULL)")
        .bind(1, id).bind(2, channel_name).run();
  }
  db_->prepare("INSERT INTO schedules (image_id, version, channel, at_ms, created_by, created_ms) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, id).bind(2, *ref.number).bind(3, channel_name).bind(4, at_ms).bind(5, by).bind(6, now).run();
  int64_t sid = db_->last_insert_rowid();
  tx.commit();
  return {sid, ref.image, *ref.number, channel_name, at_ms, by, now, "pending", std::nullopt, std::nullopt};
}

std::vector<Schedule> Store::schedules(const std::optional<std::string>& image_name, bool all) {
  if (image_name) image(*image_name);
  auto st = db_->prepare(std::string("SELECT ") + kScheduleColumns +
                         " FROM schedules s JOIN images i ON i.id = s.image_id WHERE (? IS NULL OR i.name = ?) "
                         "AND (? OR s.state = 'pending') ORDER BY s.at_ms, s.id");
  st.bind(1, image_name).bind(2, image_name).bind(3, int64_t{all ? 1 : 0});
  std::vector<Schedule> out;
  while (st.step()) out.push_back(read_schedule(st));
  return out;
}

Schedule Store::cancel_schedule(int64_t id, const std::string& by) {
  Transaction tx(*db_);
  auto st = db_->prepare(std::string("SELECT ") + kScheduleColumns +
                         " FROM schedules s JOIN images i ON i.id = s.image_id WHERE s.id = ?");
  st.bind(1, id);
  if (!st.step()) {
    std::vector<std::string> pending;
    for (const auto& s : schedules(std::nullopt, false)) pending.push_back("#" + std::to_string(s.id));
    throw NotFound("no schedule #" + std::to_string(id) +
                   (pending.empty() ? std::string("; nothing is scheduled") : "; pending: " + join(pending)));
  }
  Schedule s = read_schedule(st);
  if (s.state != "pending") {
    throw Error("schedule #" + std::to_string(id) + " is " + s.state + (s.result ? " (" + *s.result + ")" : "") +
                "; only a pending one can be cancelled");
  }
  s.state = "cancelled";
  s.done_ms = now_unix_ms();
  s.result = "cancelled by " + by;
  db_->prepare("UPDATE schedules SET state = ?, done_ms = ?, result = ? WHERE id = ?")
      .bind(1, s.state).bind(2, s.done_ms).bind(3, s.result).bind(4, id).run();
  tx.commit();
  return s;
}

std::vector<Schedule> Store::apply_due_schedules(int64_t now_ms) {
  // Asked every housekeeping tick: nothing due, no write lock taken.
  {
    auto any = db_->prepare("SELECT 1 FROM schedules WHERE state = 'pending' AND at_ms <= ? LIMIT 1");
    any.bind(1, now_ms);
    if (!any.step()) return {};
  }
  // One transaction for the lot: each publish and the row that says it was
  // done commit together, so a crash anywhere leaves both or neither. The
  // pending rows are read again inside it: another server may have applied
  // them since the look above.
  Transaction tx(*db_);
  auto st = db_->prepare(std::string("SELECT ") + kScheduleColumns +
                         " FROM schedules s JOIN images i ON i.id = s.image_id WHERE s.state = 'pending' AND s.at_ms <= ? "
                         "ORDER BY s.at_ms, s.id");
  st.bind(1, now_ms);
  std::vector<Schedule> due;
  while (st.step()) due.push_back(read_schedule(st));
  for (auto& s : due) {
    std::string by = "schedule #" + std::to_string(s.id) + " of " + s.created_by;
    try {
      int64_t id = image_id(s.image, false, 0);
      auto r = set_channel_version(id, s.image, s.channel, s.version, "publish", by);
      s.state = "done";
      s.result = r.changed ? at(s.image, s.version) + " published on " + s.channel +
                                 (r.before ? " (was @" + std::to_string(*r.before) + ")" : std::string())
                           : at(s.image, s.version) + " was already on " + s.channel;
    } catch (const Error& e) {
      s.state = "failed";
      s.result = e.what();
    }
    s.done_ms = now_ms;
    db_->prepare("UPDATE schedules SET state = ?, done_ms = ?, result = ? WHERE id = ?")
        .bind(1, s.state).bind(2, s.done_ms).bind(3, s.result).bind(4, s.id).run();
  }
  tx.commit();
  return due;
}

// What prune keeps.

std::map<int64_t, std::vector<std::string>> Store::kept_versions(const std::string& name) {
  std::map<int64_t, std::vector<std::string>> kept;
  for (const auto& c : channels(name)) {
    if (c.name == kProductionChannel) continue;  // prune's own rules: "active", "rollback target"
    if (c.version) kept[*c.version].push_back("channel " + c.name);
    if (c.previous) kept[*c.previous].push_back("rollback target of channel " + c.name);
  }
  for (const auto& g : groups())
    if (g.image == name && g.pin) kept[*g.pin].push_back("pinned by group " + g.name);
  for (const auto& c : clients())
    if (c.image == name && c.pin) kept[*c.pin].push_back("pinned by client " + c.name);
  for (const auto& s : schedules(name, false)) {
    kept[s.version].push_back("scheduled for " + s.channel + " at " + util::format_utc_ms(s.at_ms) + " (#" +
                              std::to_string(s.id) + ")");
  }
  // (Maintenance sessions add their base versions here.)
  return kept;
}

}  // namespace bootfleet::store
