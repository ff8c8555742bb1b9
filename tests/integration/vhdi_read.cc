// vhdi_read OUT FILE [PARENT ...]: reads a VHD or VHDX with libvhdi, the
// parents (child first) attached with libvhdi_file_set_parent_file, and
// writes the whole virtual disk to OUT. The tests compare this independent
// reader's bytes with ours.
#include <libvhdi.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {
[[noreturn]] void die(const char* what, libvhdi_error_t* error) {
  char buf[2048] = {};
  if (error) libvhdi_error_sprint(error, buf, sizeof buf);
  std::fprintf(stderr, "vhdi_read: %s: %s\n", what, buf);
  std::exit(1);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: vhdi_read OUT FILE [PARENT ...]\n");
    return 2;
  }
  libvhdi_error_t* error = nullptr;
  std::vector<libvhdi_file_t*> files;
  for (int i = 2; i < argc; ++i) {
    libvhdi_file_t* f = nullptr;
    if (libvhdi_file_initialize(&f, &error) != 1) die("initialize", error);
    if (libvhdi_file_open(f, argv[i], libvhdi_get_access_flags_read(), &error) != 1) die(argv[i], error);
    files.push_back(f);
  }
  for (size_t i = files.size() - 1; i > 0; --i) {
    if (libvhdi_file_set_parent_file(files[i - 1], files[i], &error) != 1) die("set parent", error);
  }
  size64_t size = 0;
  if (libvhdi_file_get_media_size(files[0], &size, &error) != 1) die("media size", error);
  FILE* out = std::fopen(argv[1], "wb");
  if (!out) die(argv[1], nullptr);
  std::vector<uint8_t> buf(1 << 20);
  for (size64_t off = 0; off < size;) {
    size_t n = size - off < buf.size() ? static_cast<size_t>(size - off) : buf.size();
    ssize_t got = libvhdi_file_read_buffer_at_offset(files[0], buf.data(), n, static_cast<off64_t>(off), &error);
    if (got <= 0) die("read", error);
    if (std::fwrite(buf.data(), 1, static_cast<size_t>(got), out) != static_cast<size_t>(got)) die("write", nullptr);
    off += static_cast<size64_t>(got);
  }
  std::fclose(out);
  for (auto f : files) {
    libvhdi_file_close(f, nullptr);
    libvhdi_file_free(&f, nullptr);
  }
  return 0;
}
