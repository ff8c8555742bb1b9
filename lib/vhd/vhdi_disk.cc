#include "vhd/vhdi_disk.h"

#include <libvhdi.h>
#include <sys/stat.h>

#include "util/error.h"
#include "util/file.h"

namespace bootfleet::vhd {

using util::Error;

namespace {

std::string take_error(libvhdi_error_t* error) {
  if (!error) return "unknown libvhdi error";
  char buf[1024] = {};
  libvhdi_error_sprint(error, buf, sizeof buf);
  libvhdi_error_free(&error);
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == '.')) s.pop_back();
  // libvhdi nests messages "a. b. c"; the last is the root cause.
  return s;
}

libvhdi_file_t* open_one(const std::string& path) {
  libvhdi_error_t* error = nullptr;
  libvhdi_file_t* file = nullptr;
  if (libvhdi_file_initialize(&file, &error) != 1) throw Error(path + ": " + take_error(error));
  if (libvhdi_file_open(file, path.c_str(), libvhdi_get_access_flags_read(), &error) != 1) {
    std::string msg = take_error(error);
    libvhdi_file_free(&file, nullptr);
    throw Error(path + ": libvhdi cannot open it: " + msg);
  }
  return file;
}

}  // namespace

std::unique_ptr<VhdiDisk> VhdiDisk::open(const std::string& path) {
  std::unique_ptr<VhdiDisk> d(new VhdiDisk());
  d->path_ = path;
  libvhdi_error_t* error = nullptr;
  std::string current = path;
  for (int depth = 0;; ++depth) {
    if (depth > 64) throw Error(path + ": parent chain deeper than 64 files (a loop?)");
    libvhdi_file_t* f = open_one(current);
    d->files_.push_back(f);
    uint32_t disk_type = 0;
    if (libvhdi_file_get_disk_type(f, &disk_type, &error) != 1) throw Error(current + ": " + take_error(error));
    if (depth == 0) {
      int file_type = 0;
      libvhdi_file_get_file_type(f, &file_type, nullptr);
      size64_t media = 0;
      if (libvhdi_file_get_media_size(f, &media, &error) != 1) throw Error(current + ": " + take_error(error));
      d->size_ = media;
      d->format_ = std::string(file_type == LIBVHDI_FILE_TYPE_VHDX ? "VHDX" : "VHD") +
                   (disk_type == LIBVHDI_DISK_TYPE_FIXED     ? " fixed"
                    : disk_type == LIBVHDI_DISK_TYPE_DYNAMIC ? " dynamic"
                                                             : " differencing");
    }
    if (disk_type != LIBVHDI_DISK_TYPE_DIFFERENTIAL) break;
    size_t name_size = 0;
    if (libvhdi_file_get_utf8_parent_filename_size(f, &name_size, &error) != 1 || name_size == 0) {
      throw Error(current + ": differencing disk without a parent file name");
    }
    std::string name(name_size, '\0');
    if (libvhdi_file_get_utf8_parent_filename(f, reinterpret_cast<uint8_t*>(name.data()), name_size, &error) != 1) {
      throw Error(current + ": " + take_error(error));
    }
    name.resize(name.find('\0') == std::string::npos ? name.size() : name.find('\0'));
    for (char& c : name) if (c == '\\') c = '/';
    std::string parent = util::join_path(util::dir_name(current), util::base_name(name));
    struct stat st {};
    if (::stat(parent.c_str(), &st) != 0) {
      throw Error(current + ": parent '" + name + "' not found (looked for " + parent + ")");
    }
    current = parent;
  }
  // Attach parents bottom-up so every child sees a complete parent.
  for (size_t i = d->files_.size() - 1; i > 0; --i) {
    auto* child = static_cast<libvhdi_file_t*>(d->files_[i - 1]);
    auto* parent = static_cast<libvhdi_file_t*>(d->files_[i]);
    if (libvhdi_file_set_parent_file(child, parent, &error) != 1) {
      throw Error(path + ": libvhdi refused the parent: " + take_error(error));
    }
  }
  return d;
}

VhdiDisk::~VhdiDisk() {
  for (void* p : files_) {
    auto* f = static_cast<libvhdi_file_t*>(p);
    libvhdi_file_close(f, nullptr);
    libvhdi_file_free(&f, nullptr);
  }
}

void VhdiDisk::read(uint64_t offset, void* buf, size_t length) const {
  std::lock_guard lock(mutex_);
  auto* f = static_cast<libvhdi_file_t*>(files_.front());
  auto* p = static_cast<uint8_t*>(buf);
  while (length > 0) {
    libvhdi_error_t* error = nullptr;
    ssize_t n = libvhdi_file_read_buffer_at_offset(f, p, length, static_cast<off64_t>(offset), &error);
    if (n <= 0) {
      throw Error(path_ + ": read of " + std::to_string(length) + " bytes at " + std::to_string(offset) +
                  " failed: " + (n < 0 ? take_error(error) : std::string("unexpected end of data")));
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    length -= static_cast<size_t>(n);
  }
}

std::vector<Extent> VhdiDisk::extents(uint64_t offset, uint64_t length) const {
  // libvhdi does not expose allocation; everything may hold data and the
  // converters' zero detection does the rest.
  std::vector<Extent> out;
  append_extent(out, {offset, std::min(length, size_ - std::min(offset, size_)), true});
  return out;
}

}  // namespace bootfleet::vhd
