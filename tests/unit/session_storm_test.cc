// Unit tests of SessionManager under many PCs at once (a boot storm): the
// slow part of a session's start (files, fsyncs, its lease) holds up only
// that PC, and starts, attaches and detaches from many threads leave one
// session per name with every start matched by an end or a live session.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "block/session.h"
#include "vhd/writer.h"

namespace {
namespace fs = std::filesystem;
using namespace bootfleet;

struct StormFixture {
  fs::path dir;
  block::Pin pin{"lab", 1, "", ""};
  std::atomic<int> started{0}, ended{0};
  // The start of session `slow_name` waits in its hook until released.
  std::string slow_name;
  std::mutex mutex;
  std::condition_variable cv;
  bool slow_entered = false, slow_released = false;
  std::unique_ptr<block::SessionManager> m;

  StormFixture() {
    std::string tmpl = (fs::temp_directory_path() / "bootfleet-storm-unit-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    pin.path = (dir / "base.vhd").string();
    vhd::WriterOptions wo;
    wo.size = 4 << 20;
    vhd::Writer w(pin.path, wo);
    w.finish();
    block::SessionManager::Options o;
    o.cache_dir = (dir / "cache").string();
    fs::create_directories(o.cache_dir);
    o.idle_timeout = std::chrono::hours(1);
    m = std::make_unique<block::SessionManager>(
        o, block::SessionManager::Hooks{[this](const block::Session& s) {
                                          ++started;
                                          if (s.name() != slow_name) return;
                                          std::unique_lock lock(mutex);
                                          slow_entered = true;
                                          cv.notify_all();
                                          cv.wait(lock, [&] { return slow_released; });
                                        },
                                        [this](const block::Session&) { ++ended; }, nullptr});
  }
  ~StormFixture() {
    release();
    m.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  void release() {
    std::lock_guard lock(mutex);
    slow_released = true;
    cv.notify_all();
  }
  std::shared_ptr<block::Session> attach(const std::string& name) {
    return m->attach(name, [this] { return pin; });
  }
};
}  // namespace

TEST_CASE("sessions: one PC's slow session start holds up only that PC's own attach", "[block]") {
  StormFixture f;
  f.slow_name = "lab/slow";
  auto slow = std::async(std::launch::async, [&] { return f.m->start("lab/slow", f.pin); });
  {
    std::unique_lock lock(f.mutex);
    REQUIRE(f.cv.wait_for(lock, std::chrono::seconds(60), [&] { return f.slow_entered; }));
  }
  // Other PCs boot and attach while lab/slow's start is in its hook. (Held
  // under the manager's lock, as before, these would wait for it for ever:
  // the 60 s are a deadlock's bound, not a speed.)
  // Whatever fails below, the slow start is let go before the futures
  // (declared before this guard) wait for their tasks: else a failure here
  // would hang instead of failing.
  struct Release {
    StormFixture& f;
    ~Release() { f.release(); }
  };
  std::future<std::shared_ptr<block::Session>> other, own;
  Release guard{f};
  other = std::async(std::launch::async, [&] {
    auto s = f.m->start("lab/pc02", f.pin);
    auto a = f.attach("lab/pc03");
    f.m->detach(a);
    return s;
  });
  REQUIRE(other.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  CHECK(other.get()->name() == "lab/pc02");
  // The slow PC's own attach waits for its start, and gets that session,
  // not a second one made by the attach.
  own = std::async(std::launch::async, [&] { return f.attach("lab/slow"); });
  CHECK(own.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  CHECK(f.m->sessions().size() == 2);  // lab/slow is not listed until it exists
  f.release();
  auto started = slow.get();
  auto attached = own.get();
  CHECK(attached == started);
  CHECK(attached->connections() == 1);
  CHECK(f.started == 3);
  CHECK(f.ended == 0);
  CHECK(f.m->sessions().size() == 3);
}

TEST_CASE("sessions: boots and attaches of many PCs from many threads leave one session per name", "[block]") {
  StormFixture f;
  constexpr int kThreads = 8, kRounds = 40, kNames = 10;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kRounds; ++i) {
        std::string name = "lab/pc" + std::to_string(rng() % kNames);
        try {
          if (rng() % 2) {
            f.m->start(name, f.pin);
          } else {
            auto a = f.attach(name);
            if (a->name() != name) ++errors;
            f.m->detach(a);
          }
        } catch (const std::exception&) {
          ++errors;  // nothing here ends a session with a tombstone: no refusal is right
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  auto all = f.m->sessions();
  CHECK(all.size() == kNames);
  for (const auto& s : all) {
    CHECK(f.m->find(s->name()) == s);
    CHECK(s->connections() == 0);
  }
  // Every start was matched by an end of the session it replaced, or is
  // one of the live ones.
  CHECK(f.started - f.ended == kNames);
}
