// vhdi_read: an independent reader for the integration tests, built on
// libvhdi (libyal), so that what we write is judged by someone else's code.
//
//   vhdi_read OUT FILE [PARENT ...]   writes the whole virtual disk to OUT
//   vhdi_read --size FILE [PARENT ...] prints the virtual disk size in bytes
//
// For a differencing file the parents are named explicitly, child first
// (vhdi_read out.raw child.vhd parent.vhd grandparent.vhd). Each child's
// recorded parent identifier must be its parent's identifier; the parents are
// attached bottom-up (grandparent to parent first) with
// libvhdi_file_set_parent_file. Exit status: 0 done, 1 libvhdi failed or the
// chain does not fit together, 2 usage.
#include <libvhdi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what, libvhdi_error_t* error) {
  char buf[4096] = {};
  if (error) {
    libvhdi_error_sprint(error, buf, sizeof buf);
    libvhdi_error_free(&error);
  }
  std::fprintf(stderr, "vhdi_read: %s%s%s\n", what.c_str(), buf[0] ? ": " : "", buf);
  std::exit(1);
}

std::string hex(const uint8_t* id, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", id[i]);
    s += b;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: vhdi_read OUT FILE [PARENT ...]\n"
                 "       vhdi_read --size FILE [PARENT ...]\n");
    return 2;
  }
  const bool size_only = std::strcmp(argv[1], "--size") == 0;
  libvhdi_error_t* error = nullptr;
  std::vector<libvhdi_file_t*> files;
  for (int i = 2; i < argc; ++i) {
    libvhdi_file_t* f = nullptr;
    if (libvhdi_file_initialize(&f, &error) != 1) die("initialize", error);
    if (libvhdi_file_open(f, argv[i], libvhdi_get_access_flags_read(), &error) != 1) {
      die(std::string("open ") + argv[i], error);
    }
    files.push_back(f);
  }
  // Every file but the last must be differencing, and the last must not be.
  for (size_t i = 0; i < files.size(); ++i) {
    uint32_t type = 0;
    if (libvhdi_file_get_disk_type(files[i], &type, &error) != 1) die(std::string("disk type of ") + argv[i + 2], error);
    bool differencing = type == LIBVHDI_DISK_TYPE_DIFFERENTIAL;
    if (differencing != (i + 1 < files.size())) {
      die(std::string(argv[i + 2]) + (differencing ? " is differencing but no parent was given"
                                                   : " is not differencing but a parent was given"),
          nullptr);
    }
  }
  // The identifiers must link up, checked here rather than trusting that
  // libvhdi_file_set_parent_file does.
  for (size_t i = 0; i + 1 < files.size(); ++i) {
    uint8_t want[16] = {}, got[16] = {};
    if (libvhdi_file_get_parent_identifier(files[i], want, sizeof want, &error) != 1) {
      die(std::string("parent identifier of ") + argv[i + 2], error);
    }
    if (libvhdi_file_get_identifier(files[i + 1], got, sizeof got, &error) != 1) {
      die(std::string("identifier of ") + argv[i + 3], error);
    }
    if (std::memcmp(want, got, sizeof want) != 0) {
      die(std::string(argv[i + 2]) + " records parent " + hex(want, 16) + " but " + argv[i + 3] + " is " +
              hex(got, 16),
          nullptr);
    }
  }
  // Bottom-up: every parent is complete before its child is attached to it.
  for (size_t i = files.size() - 1; i > 0; --i) {
    if (libvhdi_file_set_parent_file(files[i - 1], files[i], &error) != 1) {
      die(std::string("attach ") + argv[i + 2] + " as the parent of " + argv[i + 1], error);
    }
  }
  size64_t size = 0;
  if (libvhdi_file_get_media_size(files[0], &size, &error) != 1) die("media size", error);
  if (size_only) {
    std::printf("%llu\n", static_cast<unsigned long long>(size));
  } else {
    FILE* out = std::fopen(argv[1], "wb");
    if (!out) die(std::string("create ") + argv[1], nullptr);
    std::vector<uint8_t> buf(1 << 20);
    for (size64_t off = 0; off < size;) {
      size_t n = size - off < buf.size() ? static_cast<size_t>(size - off) : buf.size();
      ssize_t got = libvhdi_file_read_buffer_at_offset(files[0], buf.data(), n, static_cast<off64_t>(off), &error);
      if (got < 0) die("read at " + std::to_string(off), error);
      if (got == 0) die("read at " + std::to_string(off) + ": no data before the end of the disk", nullptr);
      if (std::fwrite(buf.data(), 1, static_cast<size_t>(got), out) != static_cast<size_t>(got)) {
        die(std::string("write ") + argv[1], nullptr);
      }
      off += static_cast<size64_t>(got);
    }
    if (std::fclose(out) != 0) die(std::string("close ") + argv[1], nullptr);
  }
  for (auto f : files) {
    libvhdi_file_close(f, nullptr);
    libvhdi_file_free(&f, nullptr);
  }
  return 0;
}
