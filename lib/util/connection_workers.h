// A block-protocol connection's worker threads: the requests its reading
// thread hands off (reads that must wait for a disk, large reads sent from
// the page cache) run here, so one slow or long reply does not hold up the
// reading of the requests behind it.
//
// Design note (measured for NBD first, then for iSCSI; docs/benchmarks.md).
// The reading thread answers what needs no wait itself: a hand-off costs a
// context switch and a futex, which for a cached 4 KiB read is most of its
// cost. Large reads are the other way round: answered one after another on
// the reading thread, 1 MiB sequential reads reached 0.75-0.8x what a thread
// pool does, because while the reader pushes one reply into the socket it
// neither reads the next request nor prepares its data. Here, while one
// worker's reply is on the socket the next one's data is being mapped or
// read on the other CPU.
//
// Bounds. Threads are started when work is waiting and none is idle, up to
// `threads`; they live as long as the connection (an idle connection that
// never sent a large read has none). At most `jobs` requests, holding at
// most `bytes` between them (what each will hold while it runs, as the
// caller counts it), wait or run; past that push() waits, after running its
// `before_wait` (the caller sends what the client may be waiting for before
// it sends more). So a client that sends many large reads and never reads
// the answers makes the connection hold a bounded amount, and its reader
// stops reading.
//
// Cancelling (iSCSI task management): cancel() takes the queued jobs a
// predicate selects off the queue (they never run) and waits for the running
// ones it selects to finish; drain() waits for everything. A job's run
// returns false when its reply could not be sent: the connection is broken,
// `on_broken` runs once (it shuts the socket so the reader stops at once),
// and queued jobs are dropped unrun from then on.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bootfleet::util {

template <class Job>
class ConnectionWorkers {
 public:
  struct Limits {
    size_t threads = 4;
    size_t jobs = 32;
    uint64_t bytes = 8u << 20;
  };
  // `run` executes one job and sends its reply; false: the reply could not
  // be sent. It runs on the worker threads, several at once.
  ConnectionWorkers(Limits limits, std::function<bool(Job&)> run, std::function<void()> on_broken)
      : limits_(limits), run_(std::move(run)), on_broken_(std::move(on_broken)) {}
  ~ConnectionWorkers() { close(); }
  ConnectionWorkers(const ConnectionWorkers&) = delete;
  ConnectionWorkers& operator=(const ConnectionWorkers&) = delete;

  // Queues `job`, which holds `bytes` until it is done. Returns false (the
  // job dropped) when the connection is broken or `before_wait` failed.
  bool push(Job&& job, uint64_t bytes, const std::function<bool()>& before_wait) {
    std::unique_lock lock(mutex_);
    auto has_room = [&] {
      return held_jobs_ == 0 || (held_jobs_ < limits_.jobs && held_bytes_ + bytes <= limits_.bytes);
    };
    if (!has_room()) {
      lock.unlock();
      if (!before_wait()) return false;
      lock.lock();
      room_.wait(lock, [&] { return has_room() || broken_; });
    }
    if (broken_ || closing_) return false;
    ++held_jobs_;
    held_bytes_ += bytes;
    queue_.push_back({std::move(job), bytes});
    if (idle_ < queue_.size() && threads_.size() < limits_.threads) threads_.emplace_back([this] { work(); });
    lock.unlock();
    ready_.notify_one();
    return true;
  }

  struct Cancelled {
    size_t dropped = 0;   // taken off the queue unrun
    size_t waited = 0;    // were running; finished (their replies sent or the connection broken)
  };
  // Takes the queued jobs `select` picks off the queue and waits until none
  // it picks is running.
  template <class Select>
  Cancelled cancel(Select select) {
    Cancelled c;
    std::unique_lock lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (select(static_cast<const Job&>(it->job))) {
        release(it->bytes);
        it = queue_.erase(it);
        ++c.dropped;
      } else {
        ++it;
      }
    }
    for (const Job* j : running_)
      if (select(*j)) ++c.waited;
    done_.wait(lock, [&] { return std::none_of(running_.begin(), running_.end(), [&](const Job* j) { return select(*j); }); });
    room_.notify_all();
    return c;
  }

  // Waits until nothing is queued or running.
  void drain() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return held_jobs_ == 0; });
  }

  // What is queued runs (dropped if the connection is broken); then the
  // threads end. Idempotent.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    ready_.notify_all();
    room_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  bool broken() const { return broken_; }
  // Held jobs (queued or running): for tests and logs.
  size_t held() {
    std::lock_guard lock(mutex_);
    return held_jobs_;
  }

 private:
  struct Queued {
    Job job;
    uint64_t bytes;
  };

  void release(uint64_t bytes) {  // mutex_ held
    --held_jobs_;
    held_bytes_ -= bytes;
  }

  void work() {
    std::unique_lock lock(mutex_);
    while (true) {
      ++idle_;
      ready_.wait(lock, [&] { return !queue_.empty() || closing_; });
      --idle_;
      if (queue_.empty()) return;  // closing, nothing left
      Queued q = std::move(queue_.front());
      queue_.pop_front();
      running_.push_back(&q.job);
      lock.unlock();
      const bool sent = !broken_ && run_(q.job);
      if (!sent && !broken_.exchange(true) && on_broken_) on_broken_();
      lock.lock();
      running_.erase(std::find(running_.begin(), running_.end(), &q.job));
      release(q.bytes);
      if (broken_) {
        // Nothing queued can be answered any more.
        for (auto& rest : queue_) release(rest.bytes);
        queue_.clear();
      }
      done_.notify_all();
      room_.notify_one();
    }
  }

  const Limits limits_;
  const std::function<bool(Job&)> run_;
  const std::function<void()> on_broken_;
  std::atomic<bool> broken_{false};

  std::mutex mutex_;  // guards everything below
  std::condition_variable ready_, room_, done_;
  std::deque<Queued> queue_;
  std::vector<const Job*> running_;
  size_t held_jobs_ = 0;
  uint64_t held_bytes_ = 0;
  size_t idle_ = 0;
  bool closing_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bootfleet::util
