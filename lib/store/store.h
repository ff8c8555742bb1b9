// The image store: a directory holding the catalog and every version file.
//
//   STORE/catalog.db                 SQLite (WAL): images, versions, block
//                                    digests, activations, leases
//   STORE/images/IMAGE/0001.vhd      version 1: a dynamic VHD
//   STORE/images/IMAGE/0002.vhd      version 2: differencing on 0001.vhd …
//   STORE/tmp/                       files being written
//   STORE/locks/IMAGE.lock           held by the one writer of an image
//
// Design note. A version becomes visible only through its catalog row, and
// the row is committed only after the file is complete, fsynced and renamed
// into images/ (and the directory fsynced). A crash therefore leaves either
// no row (and a leftover file, which opening the store removes) or a whole
// version. Writers of one image are serialised by an flock on its lock file,
// held for the whole write; cleanup only removes files of images whose lock
// it can take, so it never races a live writer. Publishing and rolling back
// touch only the catalog: one short IMMEDIATE transaction each.
// docs/store.md describes the schema and every rule here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/channels.h"
#include "store/digests.h"
#include "store/maintenance.h"
#include "store/sqlite.h"
#include "store/version_ref.h"
#include "util/error.h"
#include "vhd/disk.h"

namespace bootfleet::store {

struct VersionInfo {
  std::string image;
  int64_t number = 0;
  std::optional<int64_t> parent;
  uint64_t size = 0;
  std::string file;  // relative to the store
  uint64_t file_size = 0;
  uint64_t stored_bytes = 0;
  std::string unique_id;
  int64_t created_at = 0;  // Unix seconds
  std::string created_by;
  std::string message;
  std::optional<std::string> source;
  std::optional<std::string> recipe;
  std::optional<std::string> recipe_hash;
  std::string disk_digest;
  int depth = 1;  // files in its chain
};

// How a PC boots (docs/store.md): `linux`, the version's kernel and initrd
// over HTTP with root over NBD; `sanboot`, iPXE attaches the disk over
// iSCSI and boots the disk's own loader (Windows, or any OS whose initiator
// reads the iBFT). An image has one; a client may override its image's.
enum class BootMode { kLinux, kSanboot };
const char* boot_mode_name(BootMode mode);  // "linux" | "sanboot"
// Throws util::Error naming `what` and the accepted words unless `text` is one.
BootMode parse_boot_mode(const std::string& text, const std::string& what);

struct ImageInfo {
  std::string name;
  BootMode boot_mode = BootMode::kLinux;
  int64_t created_at = 0;
  std::optional<int64_t> active;
  std::optional<int64_t> previous;  // what rollback would make active
  int64_t version_count = 0;
  std::optional<int64_t> latest;
  uint64_t size = 0;           // virtual size of the latest version
  uint64_t bytes_on_disk = 0;  // sum of its version files
};

struct Activation {
  int64_t id = 0;
  int64_t version = 0;
  std::optional<int64_t> previous;
  std::string action;  // publish | rollback | promote
  int64_t at_ms = 0;
  std::string by;
  std::string channel = kProductionChannel;
};

struct ActivationResult {
  std::optional<int64_t> before;
  int64_t now = 0;
  bool changed = true;  // false: it was already active
};

struct Lease {
  int64_t id = 0;
  std::string image;
  int64_t version = 0;
  std::string holder;
  std::string session;
  int64_t heartbeat_at = 0;
};

// A PC known by its MAC address: the image it boots and, optionally, kernel
// arguments added to the command line bootsrv gives it.
struct ClientInfo {
  std::string mac;   // normalized aa:bb:cc:dd:ee:ff
  std::string name;  // unique; the CLIENT part of the export IMAGE/CLIENT
  std::string image;
  std::optional<std::string> cmdline;
  int64_t created_at = 0;  // Unix seconds
  // Bytes of write cache its sessions may hold; none: the server's
  // cache_quota applies.
  std::optional<uint64_t> cache_quota;
  std::optional<BootMode> boot_mode;  // unset: the image's
  std::optional<std::string> group;  // its group (channels.h), which then names its image
  std::optional<int64_t> pin;        // a version of its image it boots whatever is published
};

// What `set_client` changes; an empty cmdline removes it.
struct ClientChange {
  std::optional<std::string> name;
  std::optional<std::string> image;
  std::optional<std::string> cmdline;
  std::optional<uint64_t> cache_quota;  // 0 removes the client's own quota
  // Set: the new boot mode; set to nullopt: follow the image's again.
  std::optional<std::optional<BootMode>> boot_mode;
};

// Client names become export-name parts and log words: 1-64 characters of
// a-z, A-Z, 0-9, '.', '_', '-', starting with a letter or digit. Throws
// util::Error naming the character otherwise.
void validate_client_name(const std::string& name);
// The name a client gets when none is given: its MAC with '-' ("aa-bb-…").
std::string default_client_name(const std::string& mac);

struct ImportOptions {
  std::string message;
  std::string created_by;  // default: user@host
  std::optional<std::string> source;
  std::optional<std::string> recipe;
  std::optional<std::string> recipe_hash;
  bool publish = false;
  // Whether the version may have another size than the one before it (then
  // stored as a new base). Without it such a disk is refused with both
  // sizes: a smaller file is usually the wrong file, not a smaller disk.
  bool resize = false;
  // When the disk is a write cache over version `changed_since->first`:
  // the only blocks (of kDigestBlockSize) that may differ from it. If that
  // version becomes the new one's parent, no other block is read, so a
  // build costs what it changed. Ignored otherwise.
  std::optional<std::pair<int64_t, std::vector<uint32_t>>> changed_since;
  // A host directory whose regular files become the version's artifacts
  // (kernel, initrd …): copied into the store and committed with it.
  std::string artifacts_dir;
  std::function<void(uint64_t done, uint64_t total)> progress;
  // The number the new version must get, checked under the image's writer
  // lock: two writers racing to add version N cannot end up with N and N+1
  // (the second gets VersionNumberTaken). Unset: the next number.
  std::optional<int64_t> expect_number;
  // When the disk reads exactly as the latest version (no block differs,
  // the input padded to the image's size as an import is), store nothing: the result is that version, with
  // `unchanged` set (and `publish` still done). So an import run again
  // after one that was killed between its commit and its publish only
  // publishes. Versions with artifacts always differ (not compared).
  bool unless_same = false;
  // The token of a maintenance session this version commits: its catalog
  // record is deleted in the transaction that adds the version (and the
  // import fails, storing nothing, if it is gone). See store/maintenance.h.
  std::optional<std::string> ends_maintenance;
};

// Thrown when a thing named does not exist in the catalog: an image, a
// version, a channel, a group, a client, a schedule, a maintenance session.
// The message names it and lists those that do exist. The control API
// answers it 404; any other refusal of the store is a plain util::Error
// (409 there), and a failure of the catalog itself is neither.
class NotFound : public util::Error {
 public:
  using util::Error::Error;
};

// Thrown by import_disk when `expect_number` is not the next number: the
// image's latest version (if any) is `latest`.
class VersionNumberTaken : public util::Error {
 public:
  VersionNumberTaken(const std::string& message, std::optional<int64_t> latest)
      : util::Error(message), latest_(latest) {}
  std::optional<int64_t> latest() const { return latest_; }

 private:
  std::optional<int64_t> latest_;
};

struct PatchResult {
  uint64_t file_size = 0;     // bytes of the written file
  uint64_t changed_blocks = 0;  // blocks (2 MiB) whose digests differ
};

struct ImportResult {
  VersionInfo version;
  bool new_base = false;    // written as a dynamic base (first version, or depth limit)
  uint64_t changed_blocks = 0;
  bool unchanged = false;  // see ImportOptions::unless_same
};

struct PruneDecision {
  int64_t number = 0;
  bool keep = false;
  std::vector<std::string> reasons;  // why it is kept
};

struct GcResult {
  std::vector<std::string> removed;  // paths relative to the store
  uint64_t bytes = 0;
};

struct VerifyProblem {
  std::string image;
  int64_t version = 0;
  std::string message;
};

struct VerifyReport {
  std::vector<std::string> checked;  // "IMAGE@N"
  uint64_t bytes_hashed = 0;
  std::vector<VerifyProblem> problems;
};

struct DiffRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct DiffResult {
  VersionInfo a, b;
  std::vector<DiffRange> ranges;  // changed byte ranges, merged
  uint64_t changed_bytes = 0;
  uint64_t blocks_added = 0, blocks_removed = 0, blocks_modified = 0;
  bool data_read = false;     // --verify read the data
  bool verified = true;       // with --verify: the data confirmed the digests
  std::vector<std::string> verify_problems;
};

class Store {
 public:
  // $BOOTFLEET_STORE, else /var/lib/bootfleet.
  static std::string default_dir();
  // Creates the layout and catalog; refuses a directory that holds other files.
  static void init(const std::string& dir);
  // Opens an existing store and removes the leftovers of crashed writers
  // (listed in cleanup_report()).
  static std::unique_ptr<Store> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& cleanup_report() const { return cleanup_; }

  // Reading.
  std::vector<ImageInfo> images();
  ImageInfo image(const std::string& name);  // throws, listing the images there are
  std::vector<VersionInfo> versions(const std::string& image);
  VersionInfo version(const VersionRef& ref);  // throws, listing the versions there are
  std::vector<Activation> history(const std::string& image);
  BlockDigests digests(const VersionInfo& v);
  std::string path_of(const VersionInfo& v) const;
  std::unique_ptr<vhd::Disk> open_version(const VersionInfo& v) const;
  // Artifacts kept beside a version (images/IMAGE/NNNN.artifacts/NAME):
  // their names, sorted, and the path of one (throws, listing the names
  // there are, when it has no artifact of that name).
  std::vector<std::string> artifacts(const VersionInfo& v) const;
  std::string artifact_path(const VersionInfo& v, const std::string& name) const;

  // Writing.
  ImportResult import_disk(const std::string& image, const vhd::Disk& disk, const ImportOptions& options);
  ActivationResult publish(const VersionRef& ref, const std::string& by);
  ActivationResult rollback(const std::string& image, std::optional<int64_t> to, const std::string& by);
  // Decides what `prune --keep K` keeps; with `apply`, deletes the rest.
  std::vector<PruneDecision> prune(const std::string& image, int64_t keep, bool apply);
  // Removes exactly one version; refused (util::Error with the reason) when
  // it is active, the rollback target, leased, or a parent of another.
  void remove_version(const VersionRef& ref);
  ImportResult squash(const VersionRef& ref, const ImportOptions& options);
  // Writes version `ref` as a differencing VHD over version `base` of the
  // same image (base < ref's number), holding only the blocks whose digests
  // differ (their differing sectors), read from the chain without reading
  // any other block: what `imgtool push` uploads. The file's parent locators
  // name `base`'s file in this store; a receiver attaches its own copy.
  PatchResult write_patch(const VersionRef& ref, int64_t base, const std::string& out_path, bool replace);
  GcResult gc(bool apply);

  VerifyReport verify(const std::optional<VersionRef>& ref,
                      const std::function<void(uint64_t, uint64_t)>& progress = {});
  DiffResult diff(const VersionRef& a, const VersionRef& b, bool read_data);

  // Clients. `key` is a MAC address (any form util::parse_mac accepts) or a
  // client name. Errors name the MAC, name or image that is wrong.
  ClientInfo add_client(const std::string& mac, const std::optional<std::string>& name, const std::string& image,
                        const std::optional<std::string>& cmdline, std::optional<BootMode> boot_mode = std::nullopt);
  std::vector<ClientInfo> clients();  // sorted by name
  std::optional<ClientInfo> find_client(const std::string& key);
  ClientInfo client(const std::string& key);  // throws, saying which clients there are
  ClientInfo set_client(const std::string& key, const ClientChange& change);
  void remove_client(const std::string& key);
  // The boot mode an image's clients get unless they set their own.
  void set_image_boot_mode(const std::string& image, BootMode mode);
  // What `client` boots by: its own mode, else its image's (channels.cc).
  BootMode effective_boot_mode(const ClientInfo& client);

  // Channels, groups, pins and scheduled publishes (channels.h, channels.cc).
  // Errors name what exists ("channels: production, test").
  std::vector<ChannelInfo> channels(const std::string& image);
  ChannelInfo channel(const std::string& image, const std::string& name);
  // Points `channel` at ref's version; production is publish(). A channel
  // other than production and test is made by its first publish only when
  // `create` (so a typo is an error, not a new channel).
  ActivationResult publish_channel(const VersionRef& ref, const std::string& channel, const std::string& by,
                                   bool create = false);
  // Points `to` at the version `from` names now (recorded as "promote").
  ActivationResult promote(const std::string& image, const std::string& from, const std::string& to,
                           const std::string& by);
  ActivationResult rollback_channel(const std::string& image, const std::string& channel, std::optional<int64_t> to,
                                    const std::string& by);
  GroupInfo add_group(const std::string& name, const std::string& image, const std::string& channel,
                      std::optional<int64_t> pin);
  std::vector<GroupInfo> groups();  // sorted by name
  GroupInfo group(const std::string& name);  // throws, listing the groups
  GroupInfo set_group(const std::string& name, const GroupChange& change);
  // Refused while clients are in it (named).
  void remove_group(const std::string& name);
  // Puts a client in a group (its image becomes the group's) or, with
  // nullopt, takes it out (it keeps the image).
  ClientInfo set_client_group(const std::string& key, const std::optional<std::string>& group);
  // Pins a client to a version of its image, or unpins it (nullopt).
  ClientInfo set_client_pin(const std::string& key, std::optional<int64_t> pin);
  // What a boot of `client` gets: client pin -> group pin -> group channel
  // -> production (see channels.h). Throws naming what is missing.
  BootResolution resolve_boot(const ClientInfo& client);
  // A PC the store does not know booting `image` (bootsrv's default_image).
  BootResolution resolve_image(const std::string& image);
  Schedule add_schedule(const VersionRef& ref, const std::string& channel, int64_t at_ms, const std::string& by,
                        bool create_channel = false);
  // Pending ones (of `image`, or all); with `all`, done and cancelled too.
  std::vector<Schedule> schedules(const std::optional<std::string>& image, bool all);
  Schedule cancel_schedule(int64_t id, const std::string& by);
  // Applies every pending schedule due at `now_ms`, each exactly once.
  std::vector<Schedule> apply_due_schedules(int64_t now_ms);
  // The versions of `image` that channels, rollback targets, pins and
  // pending schedules refer to, each with its reasons: never pruned.
  std::map<int64_t, std::vector<std::string>> kept_versions(const std::string& image);

  // Leases: a server records the versions its sessions pin.
  int64_t add_lease(const VersionRef& ref, const std::string& holder, const std::string& session);
  void heartbeat(const std::string& holder);
  void release_lease(int64_t id);
  std::vector<Lease> live_leases(const std::string& image);
  // Every lease, live or not, of every image.
  std::vector<Lease> all_leases();
  static constexpr int64_t kLeaseTtlSeconds = 120;

  // Maintenance sessions (store/maintenance.h; defined in maintenance.cc).
  // start_maintenance: `client` by MAC or name, `from` a version (default:
  // the active one); throws naming what exists when the image, client or
  // version is unknown or the image or client already has one.
  MaintenanceInfo start_maintenance(const std::string& image, const std::string& client,
                                    std::optional<int64_t> from, const std::string& by);
  std::vector<MaintenanceInfo> maintenance_sessions();  // by image
  std::optional<MaintenanceInfo> find_maintenance(const std::string& image);
  std::optional<MaintenanceInfo> maintenance_of_client(const std::string& client_name);
  // The image's session; throws naming the sessions there are.
  MaintenanceInfo maintenance(const std::string& image);
  // Deletes the record (discard). False if `token` is no longer the image's.
  bool end_maintenance(const std::string& image, const std::string& token);

  // Chains deeper than this get a new dynamic base on import.
  static constexpr int kMaxChainDepth = 32;

 private:
  explicit Store(std::string dir);
  void migrate();
  void cleanup();
  std::string lock_path(const std::string& image) const;
  int64_t image_id(const std::string& name, bool create, int64_t now);
  VersionInfo read_version_row(Statement& st);
  ImportResult write_version(const std::string& image, const vhd::Disk& disk, const ImportOptions& options,
                             std::optional<VersionInfo> force_base_of);
  // write_version's catalog transaction: the row, its block digests, and the
  // end of the maintenance session it commits.
  void record_version(const VersionInfo& v, const BlockDigests& digests, const ImportOptions& options);
  std::vector<int64_t> rollback_stack(int64_t image_id);
  std::vector<int64_t> channel_stack(int64_t image_id, const std::string& channel);
  std::vector<std::string> channel_names(int64_t image_id);
  std::optional<int64_t> channel_version(int64_t image_id, const std::string& channel);
  // In the caller's transaction: points the channel at `version` and records it.
  ActivationResult set_channel_version(int64_t image_id, const std::string& image, const std::string& channel,
                                       int64_t version, const std::string& action, const std::string& by);
  void check_channel(int64_t image_id, const std::string& image, const std::string& channel, bool create);
  void fill_depths(std::vector<VersionInfo>& versions);
  void check_client_fields(const std::string& what, const std::optional<std::string>& name,
                           const std::optional<std::string>& image, const std::optional<std::string>& cmdline,
                           const std::string& own_mac);

  std::string dir_;
  std::unique_ptr<Database> db_;
  std::vector<std::string> cleanup_;
};

std::string default_creator();  // user@host

}  // namespace bootfleet::store
