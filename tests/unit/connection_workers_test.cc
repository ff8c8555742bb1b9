// util::ConnectionWorkers: bounds, cancelling queued and running jobs, a
// broken connection, closing. Jobs block on a gate the test opens, so what
// is queued and what runs is known at each check (no timing assumptions:
// every wait is for a state, bounded by a generous deadline).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "util/connection_workers.h"

using namespace bootfleet::util;

namespace {

struct Job {
  int id = 0;
};

// Jobs wait here until the test lets them go; records what ran.
class Gate {
 public:
  bool run(const Job& j) {
    std::unique_lock lock(mutex_);
    ++running_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
    --running_;
    ran_.push_back(j.id);
    return j.id >= 0;  // a negative id: "the reply could not be sent"
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  // Waits (up to 10 s) until `n` jobs are inside run().
  bool wait_running(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return running_ == n; });
  }
  std::vector<int> ran() {
    std::lock_guard lock(mutex_);
    return ran_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
  int running_ = 0;
  std::vector<int> ran_;
};

}  // namespace

TEST_CASE("connection workers run jobs on at most their threads and bound what waits", "[util]") {
  Gate gate;
  std::atomic<int> broken{0};
  ConnectionWorkers<Job>::Limits limits{2, 4, 1000};
  ConnectionWorkers<Job> w(limits, [&](Job& j) { return gate.run(j); }, [&] { ++broken; });
  std::atomic<int> waits{0};
  auto before_wait = [&] {
    ++waits;
    return true;
  };
  for (int i = 1; i <= 4; ++i) REQUIRE(w.push(Job{i}, 100, before_wait));
  REQUIRE(gate.wait_running(2));  // two threads, four jobs: two run, two wait
  CHECK(w.held() == 4);
  CHECK(waits == 0);
  // A fifth job finds no room (4 jobs held): before_wait runs, then push
  // waits until the gate opens and a job ends.
  std::thread pusher([&] { CHECK(w.push(Job{5}, 100, before_wait)); });
  for (int i = 0; i < 10000 && waits == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(w.held() == 4);  // the fifth is not in yet
  gate.open();
  pusher.join();
  CHECK(waits == 1);
  w.drain();
  CHECK(w.held() == 0);
  auto ran = gate.ran();
  std::sort(ran.begin(), ran.end());
  CHECK(ran == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(broken == 0);
}

TEST_CASE("connection workers: a job larger than the byte bound runs alone", "[util]") {
  Gate gate;
  ConnectionWorkers<Job> w({4, 32, 1000}, [&](Job& j) { return gate.run(j); }, nullptr);
  REQUIRE(w.push(Job{1}, 5000, [] { return true; }));  // nothing held: it goes in
  REQUIRE(gate.wait_running(1));
  bool waited = false;
  // before_wait failing (the client is gone) drops the job.
  CHECK_FALSE(w.push(Job{2}, 10, [&] {
    waited = true;
    return false;
  }));
  CHECK(waited);
  gate.open();
  w.drain();
  CHECK(gate.ran() == std::vector<int>{1});
}

TEST_CASE("connection workers: cancel drops queued jobs and waits for running ones", "[util]") {
  Gate gate;
  ConnectionWorkers<Job> w({1, 32, 1u << 20}, [&](Job& j) { return gate.run(j); }, nullptr);
  for (int i = 1; i <= 4; ++i) REQUIRE(w.push(Job{i}, 1, [] { return true; }));
  REQUIRE(gate.wait_running(1));  // job 1 runs on the one thread; 2, 3, 4 wait
  auto c = w.cancel([](const Job& j) { return j.id == 3; });
  CHECK(c.dropped == 1);
  CHECK(c.waited == 0);
  CHECK(w.held() == 3);
  // Cancelling the running job waits for it: open the gate from another thread.
  std::thread opener([&] {
    REQUIRE(gate.wait_running(1));
    gate.open();
  });
  c = w.cancel([](const Job& j) { return j.id == 1 || j.id == 2; });
  // Job 1 was running or done, job 2 queued, running or done when cancel
  // looked (the gate may open first); either way neither runs now.
  CHECK(c.dropped <= 1);
  auto at_cancel = gate.ran();
  // Job 2 was either dropped, or had run to its end when cancel returned.
  CHECK((c.dropped == 1) != (std::count(at_cancel.begin(), at_cancel.end(), 2) == 1));
  opener.join();
  w.drain();
  auto ran = gate.ran();
  CHECK(ran.front() == 1);
  if (c.dropped == 1) CHECK(std::find(ran.begin(), ran.end(), 2) == ran.end());
  CHECK(std::count(at_cancel.begin(), at_cancel.end(), 1) == 1);
  CHECK(std::find(ran.begin(), ran.end(), 3) == ran.end());
  CHECK(std::find(ran.begin(), ran.end(), 4) != ran.end());
  CHECK(w.cancel([](const Job&) { return true; }).dropped == 0);  // nothing left
}

TEST_CASE("connection workers: a reply that cannot be sent breaks the connection once", "[util]") {
  Gate gate;
  std::atomic<int> broken{0};
  ConnectionWorkers<Job> w({1, 32, 1u << 20}, [&](Job& j) { return gate.run(j); }, [&] { ++broken; });
  REQUIRE(w.push(Job{-1}, 1, [] { return true; }));
  REQUIRE(gate.wait_running(1));
  REQUIRE(w.push(Job{2}, 1, [] { return true; }));
  REQUIRE(w.push(Job{3}, 1, [] { return true; }));
  gate.open();
  w.drain();  // the queued jobs are dropped unrun once the first failed
  CHECK(broken == 1);
  CHECK(w.broken());
  CHECK(gate.ran() == std::vector<int>{-1});
  CHECK_FALSE(w.push(Job{4}, 1, [] { return true; }));
  w.close();
  CHECK(gate.ran() == std::vector<int>{-1});
}

TEST_CASE("connection workers: close runs what is queued, then joins; twice is harmless", "[util]") {
  Gate gate;
  ConnectionWorkers<Job> w({2, 32, 1u << 20}, [&](Job& j) { return gate.run(j); }, nullptr);
  for (int i = 1; i <= 5; ++i) REQUIRE(w.push(Job{i}, 1, [] { return true; }));
  gate.open();
  w.close();
  CHECK(gate.ran().size() == 5);
  CHECK(w.held() == 0);
  w.close();
  CHECK_FALSE(w.push(Job{6}, 1, [] { return true; }));  // closed: nothing more runs
}
