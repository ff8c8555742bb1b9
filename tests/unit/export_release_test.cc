// block::OpenedExport releases itself: once, whichever way its holder lets
// go of it (destroyed, assigned over, moved away and the new holder gone,
// released early by hand). Each path once had a hand-written call of its own.
#include <catch2/catch.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "block/export.h"

using bootfleet::block::OpenedExport;
using bootfleet::block::ReleaseOnce;

namespace {

OpenedExport counted(int& releases) {
  OpenedExport e;
  e.description = "counted";
  e.release = [&releases] { ++releases; };
  return e;
}

}  // namespace

TEST_CASE("OpenedExport: released once when destroyed, never by a moved-from copy", "[block]") {
  int releases = 0;
  {
    OpenedExport a = counted(releases);
    CHECK(a.release);
    OpenedExport b = std::move(a);
    CHECK_FALSE(a.release);  // NOLINT(bugprone-use-after-move): what moved-from means is the point
    CHECK(releases == 0);
  }
  CHECK(releases == 1);
}

TEST_CASE("OpenedExport: assigning over a held export releases the old one first", "[block]") {
  int first = 0, second = 0;
  OpenedExport e = counted(first);
  e = counted(second);
  CHECK(first == 1);
  CHECK(second == 0);
  e = {};
  CHECK(second == 1);
  CHECK(first == 1);
}

TEST_CASE("OpenedExport: an early release by hand is the only one", "[block]") {
  int releases = 0;
  {
    OpenedExport e = counted(releases);
    e.release();
    CHECK(releases == 1);
    e.release();
    CHECK(releases == 1);
  }
  CHECK(releases == 1);
}

TEST_CASE("OpenedExport: kept in containers (iSCSI's kept sessions) and released when they drop it", "[block]") {
  int releases = 0;
  std::vector<OpenedExport> kept;
  for (int i = 0; i < 3; ++i) kept.push_back(counted(releases));
  std::optional<OpenedExport> one = std::move(kept.back());
  kept.pop_back();
  CHECK(releases == 0);  // the moved-from element popped: nothing released
  kept.clear();
  CHECK(releases == 2);
  one.reset();
  CHECK(releases == 3);
  // Nothing to release: no call at all.
  OpenedExport plain{nullptr, "plain", nullptr};
  CHECK_FALSE(plain.release);
  ReleaseOnce empty;
  empty();
}
