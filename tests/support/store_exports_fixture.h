// A store in a temporary directory and the exports bootsrv serves from it
// (serve::StoreExports with a session manager on DIR/cache), for unit tests
// of what sits on the serve layer: boot scripts, the status page. Removed
// with the fixture.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "serve/exports.h"
#include "store/store.h"
#include "util/file.h"
#include "vhd/raw_disk.h"

namespace bootfleet::test {

struct StoreExportsFixture {
  std::filesystem::path dir;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<serve::StoreExports> exports;

  StoreExportsFixture() {
    char tmpl[] = "/tmp/bootfleet-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    store::Store::init((dir / "s").string());
    store = store::Store::open((dir / "s").string());
    std::filesystem::create_directories(dir / "cache");
    block::SessionManager::Options options;
    options.cache_dir = (dir / "cache").string();
    exports = std::make_unique<serve::StoreExports>(*store, options);
  }
  ~StoreExportsFixture() {
    exports.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  StoreExportsFixture(const StoreExportsFixture&) = delete;
  StoreExportsFixture& operator=(const StoreExportsFixture&) = delete;

  // Imports a 4 MiB sparse disk as the next version of `image`, published;
  // with kernel artifacts when `artifacts`.
  void add_version(const std::string& image, bool artifacts) {
    std::string raw = (dir / "d.raw").string();
    {
      auto fd = util::open_file(raw, O_RDWR | O_CREAT | O_TRUNC);
      REQUIRE(::ftruncate(fd.get(), 4 << 20) == 0);
    }
    store::ImportOptions o;
    o.publish = true;
    if (artifacts) {
      std::filesystem::create_directories(dir / "art");
      std::ofstream(dir / "art" / "vmlinuz") << "kernel";
      std::ofstream(dir / "art" / "initrd.img") << "initrd";
      o.artifacts_dir = (dir / "art").string();
    }
    exports->with_store([&](store::Store& s) { return s.import_disk(image, *vhd::RawDisk::open(raw), o); });
  }
};

}  // namespace bootfleet::test
