// The named operations of a Guest (guest.h): one libguestfs call each, with
// the message a user needs when it fails. Recipes and commands call these;
// only lib/guest includes <guestfs.h>.
#include <guestfs.h>

#include <strings.h>

#include <cstdlib>

#include "guest/guest.h"
#include "util/error.h"
#include "util/text.h"

namespace bootfleet::guest {

namespace {
// Takes a string libguestfs allocated.
std::string take(char* p) {
  std::string s = p;
  std::free(p);
  return s;
}
constexpr PartitionType kPartitionTypes[] = {
    {"linux", 0x83, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
    {"efi", 0xef, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
    {"ntfs", 0x07, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"},
    {"fat32", 0x0c, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"},
    {"swap", 0x82, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"},
};
}  // namespace

const PartitionType* find_partition_type(const std::string& name) {
  for (const auto& t : kPartitionTypes)
    if (name == t.name) return &t;
  return nullptr;
}

std::vector<std::string> partition_type_names() {
  std::vector<std::string> out;
  for (const auto& t : kPartitionTypes) out.push_back(t.name);
  return out;
}

std::string Guest::partition_type(const std::string& partition) {
  // Not a partition (a whole-disk filesystem, an LV): no type. Errors are
  // answers here, so they are read without check().
  char* disk = guestfs_part_to_dev(g_, partition.c_str());
  if (!disk) return "";
  std::string dev = take(disk);
  int n = guestfs_part_to_partnum(g_, partition.c_str());
  char* table = guestfs_part_get_parttype(g_, dev.c_str());
  if (n < 1 || !table) return "";
  if (take(table) == "gpt") {
    char* guid = guestfs_part_get_gpt_type(g_, dev.c_str(), n);
    if (!guid) return "";
    std::string g = take(guid);
    for (const auto& t : kPartitionTypes)
      if (strcasecmp(g.c_str(), t.gpt_guid) == 0) return t.name;
    return "";
  }
  int id = guestfs_part_get_mbr_id(g_, dev.c_str(), n);
  for (const auto& t : kPartitionTypes)
    if (id == t.mbr_id) return t.name;
  return "";
}

bool Guest::exists(const std::string& path) {
  int rc = guestfs_exists(g_, path.c_str());
  check(rc, "look for " + path);
  return rc == 1;
}

bool Guest::is_dir(const std::string& path, bool follow_symlinks) {
  return guestfs_is_dir_opts(g_, path.c_str(), GUESTFS_IS_DIR_OPTS_FOLLOWSYMLINKS, follow_symlinks ? 1 : 0, -1) == 1;
}

bool Guest::is_symlink(const std::string& path) { return guestfs_is_symlink(g_, path.c_str()) == 1; }

void Guest::mkdir_p(const std::string& path) { check(guestfs_mkdir_p(g_, path.c_str()), "mkdir -p " + path); }

void Guest::mkmountpoint(const std::string& path) {
  check(guestfs_mkmountpoint(g_, path.c_str()), "make mount point " + path);
}

void Guest::chmod(uint32_t mode, const std::string& path) {
  check(guestfs_chmod(g_, static_cast<int>(mode), path.c_str()), "chmod " + util::format_mode(mode) + " " + path);
}

void Guest::chown(int uid, int gid, const std::string& path) {
  check(guestfs_chown(g_, uid, gid, path.c_str()),
        "chown " + std::to_string(uid) + ":" + std::to_string(gid) + " " + path);
}

void Guest::write_file(const std::string& path, const std::string& content) {
  check(guestfs_write(g_, path.c_str(), content.data(), content.size()), "write " + path);
}

std::string Guest::read_file(const std::string& path) {
  size_t size = 0;
  char* raw = check(guestfs_read_file(g_, path.c_str(), &size), "read " + path);
  std::string text(raw, size);
  std::free(raw);
  return text;
}

void Guest::symlink(const std::string& target, const std::string& link) {
  check(guestfs_ln_sf(g_, target.c_str(), link.c_str()), "ln -sf " + target + " " + link);
}

void Guest::rm(const std::string& path) { check(guestfs_rm(g_, path.c_str()), "rm " + path); }

void Guest::rmdir(const std::string& path) { check(guestfs_rmdir(g_, path.c_str()), "rmdir " + path); }

void Guest::rm_rf(const std::string& path) { check(guestfs_rm_rf(g_, path.c_str()), "rm -rf " + path); }

void Guest::upload(const std::string& host, const std::string& path) {
  check(guestfs_upload(g_, host.c_str(), path.c_str()), "upload " + host + " to " + path);
}

void Guest::download(const std::string& path, const std::string& host) {
  check(guestfs_download(g_, path.c_str(), host.c_str()), "download " + path + " to " + host);
}

void Guest::copy_in(const std::string& host, const std::string& dir) {
  check(guestfs_copy_in(g_, host.c_str(), dir.c_str()), "copy " + host + " into " + dir);
}

void Guest::copy_out(const std::string& path, const std::string& host_dir) {
  check(guestfs_copy_out(g_, path.c_str(), host_dir.c_str()), "copy " + path + " out to " + host_dir);
}

void Guest::tar_in(const std::string& host, const std::string& dir, const std::string& compression) {
  int rc = compression.empty() ? guestfs_tar_in_opts(g_, host.c_str(), dir.c_str(), -1)
                               : guestfs_tar_in_opts(g_, host.c_str(), dir.c_str(), GUESTFS_TAR_IN_OPTS_COMPRESS,
                                                     compression.c_str(), -1);
  check(rc, "unpack " + host + " into " + dir);
}

std::string Guest::sh(const std::string& command) {
  return take(check(guestfs_sh(g_, command.c_str()), "the command failed"));
}

bool Guest::feature_available(const std::string& feature) {
  const char* list[] = {feature.c_str(), nullptr};
  return guestfs_feature_available(g_, const_cast<char**>(list)) == 1;
}

int64_t Guest::sectors(const std::string& device) {
  int64_t n = guestfs_blockdev_getsz(g_, device.c_str());
  check(n < 0 ? -1 : 0, "size of " + device);
  return n;
}

void Guest::part_init(const std::string& disk, const std::string& table) {
  check(guestfs_part_init(g_, disk.c_str(), table.c_str()), "create a partition table on " + disk);
}

void Guest::part_add(const std::string& disk, int64_t first_sector, int64_t last_sector) {
  check(guestfs_part_add(g_, disk.c_str(), "p", first_sector, last_sector),
        "add a partition on " + disk + " from sector " + std::to_string(first_sector) + " to " +
            std::to_string(last_sector));
}

void Guest::part_set_gpt_type(const std::string& disk, int number, const std::string& guid) {
  check(guestfs_part_set_gpt_type(g_, disk.c_str(), number, guid.c_str()),
        "set the type of partition " + std::to_string(number) + " of " + disk);
}

void Guest::part_set_mbr_id(const std::string& disk, int number, int id) {
  check(guestfs_part_set_mbr_id(g_, disk.c_str(), number, id),
        "set the type of partition " + std::to_string(number) + " of " + disk);
}

void Guest::part_set_bootable(const std::string& disk, int number, bool bootable) {
  check(guestfs_part_set_bootable(g_, disk.c_str(), number, bootable ? 1 : 0),
        std::string(bootable ? "mark" : "unmark") + " partition " + std::to_string(number) + " of " + disk +
            " active");
}

void Guest::part_set_legacy_bios_bootable(const std::string& disk, int number) {
  const std::string what = "mark partition " + std::to_string(number) + " of " + disk + " legacy BIOS bootable";
  int64_t attributes = guestfs_part_get_gpt_attributes(g_, disk.c_str(), number);
  check(attributes < 0 ? -1 : 0, what);
  check(guestfs_part_set_gpt_attributes(g_, disk.c_str(), number, attributes | 4), what);
}

std::string Guest::part_table_type(const std::string& disk) {
  return take(check(guestfs_part_get_parttype(g_, disk.c_str()), "partition table of " + disk));
}

std::string Guest::part_disk(const std::string& partition) {
  return take(check(guestfs_part_to_dev(g_, partition.c_str()),
                    partition + " is not a partition (extlinux needs a partitioned disk)"));
}

int Guest::part_number(const std::string& partition) {
  int n = guestfs_part_to_partnum(g_, partition.c_str());
  check(n, "partition number of " + partition);
  return n;
}

void Guest::pwrite_device(const std::string& device, const std::string& data, int64_t offset) {
  int wrote = guestfs_pwrite_device(g_, device.c_str(), data.data(), data.size(), offset);
  if (wrote != static_cast<int>(data.size())) {
    fail("write " + std::to_string(data.size()) + " bytes at offset " + std::to_string(offset) + " of " + device);
  }
}

void Guest::mkfs(const std::string& type, const std::string& device) {
  check(guestfs_mkfs(g_, type.c_str(), device.c_str()), "mkfs." + type + " " + device);
}

void Guest::mkswap(const std::string& device, const std::string& label) {
  check(label.empty() ? guestfs_mkswap(g_, device.c_str())
                      : guestfs_mkswap_opts(g_, device.c_str(), GUESTFS_MKSWAP_OPTS_LABEL, label.c_str(), -1),
        "mkswap " + device);
}

void Guest::set_label(const std::string& device, const std::string& label) {
  check(guestfs_set_label(g_, device.c_str(), label.c_str()), "label " + device);
}

void Guest::mount(const std::string& device, const std::string& mountpoint) {
  check(guestfs_mount(g_, device.c_str(), mountpoint.c_str()), "mount " + device + " on " + mountpoint);
}

std::vector<std::pair<std::string, std::string>> Guest::mountpoints() {
  auto flat = take_strings(check(guestfs_mountpoints(g_), "list mount points"));
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) out.emplace_back(flat[i], flat[i + 1]);
  return out;
}

void Guest::extlinux(const std::string& dir) {
  check(guestfs_extlinux(g_, dir.c_str()), "extlinux --install " + dir);
}

}  // namespace bootfleet::guest
