// Channels, client groups, pins and scheduled publishes: what decides which
// version a PC boots (docs/channels.md).
//
// Design note. A channel is a named pointer of an image to one of its
// versions. `production` is the image's active version (images.
// active_version, as before channels existed), so every store that predates
// them already has its production channel and every reader of "the active
// version" keeps working; other channels (`test` always exists, others are
// made by their first publish) are rows of `channels`. Every change of a
// channel is one row of `activations` carrying its channel, so history and
// the rollback stack are per channel: rollback replays only its channel's
// rows. A group names an image, a channel and optionally a pinned version;
// a client belongs to at most one group and may pin a version itself.
//
// Resolution (Store::resolve_boot) happens when bootsrv makes a boot script,
// in this order, the first that applies winning:
//   (maintenance override: reserved for maintenance sessions, issue 19)
//   client pin -> group pin -> the group's channel -> production.
// A channel with no version yet (a fresh `test`) falls through to
// production, so a test group boots what everybody boots until something is
// published to test.
//
// Scheduled publishes are rows of `schedules` (pending, done, cancelled or
// failed). bootsrv applies the due ones from its housekeeping thread, each
// in the same IMMEDIATE transaction that marks it done, so a schedule fires
// exactly once whatever restarts or crashes happen around it.
//
// What must not be deleted: Store::kept_versions collects, per image, every
// version a channel (and its rollback target), a pin or a pending schedule
// refers to, with the reason; prune and remove_version honour it. A new kind
// of reference (maintenance sessions' base versions) adds itself there.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bootfleet::store {

inline constexpr const char* kProductionChannel = "production";
inline constexpr const char* kTestChannel = "test";

// Channel and group names: 1-64 characters of a-z, A-Z, 0-9, '.', '_', '-',
// starting with a letter or digit. Throws util::Error naming `what` and the
// character.
void validate_channel_name(const std::string& name);
void validate_group_name(const std::string& name);

struct ChannelInfo {
  std::string image;
  std::string name;
  std::optional<int64_t> version;   // none: nothing published to it yet
  std::optional<int64_t> previous;  // where its rollback goes
};

struct GroupInfo {
  std::string name;
  std::string image;
  std::string channel = kProductionChannel;
  std::optional<int64_t> pin;  // a version of `image` every member boots
  int64_t created_at = 0;
  std::vector<std::string> members;  // client names, sorted
};

// What `set_group` changes. A new image clears the pin unless one is given.
struct GroupChange {
  std::optional<std::string> image;
  std::optional<std::string> channel;
  std::optional<std::optional<int64_t>> pin;  // set to nullopt: unpin
};

// Which version a client's boot gets, and why.
struct BootResolution {
  std::string image;
  int64_t version = 0;
  // "client pin", "group pin", "channel" or "production"
  std::string source;
  std::string channel = kProductionChannel;  // the channel followed (when source is channel/production)
  std::optional<std::string> group;
  std::string describe() const;  // "lab@3 (channel test of group lab-test)"
};

struct Schedule {
  int64_t id = 0;
  std::string image;
  int64_t version = 0;
  std::string channel = kProductionChannel;
  int64_t at_ms = 0;
  std::string created_by;
  int64_t created_ms = 0;
  std::string state;  // pending | done | cancelled | failed
  std::optional<int64_t> done_ms;
  std::optional<std::string> result;  // what happened, or why it failed
};

// "2026-11-26T19:00:00Z", "2026-11-26 19:00" (UTC), "+90s", "+15m", "+2h",
// "+1d" (from now_ms) or "@UNIXSECONDS", as Unix milliseconds. Throws
// util::Error naming `what` and the accepted forms.
int64_t parse_schedule_time(const std::string& text, int64_t now_ms, const std::string& what);

}  // namespace bootfleet::store
