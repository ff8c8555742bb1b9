// A small metrics registry and the Prometheus text format (version 0.0.4)
// it renders to: counters, gauges and histograms with labels.
//
// Design note. Hot paths (every block request, every accepted connection)
// must not take a lock or build a string: they look their series up once
// (at connection or session start) and keep the Counter&, whose add() is
// one relaxed atomic. Series are never removed, so those references stay
// valid for the life of the process; that is also why each family has a
// cap on its number of series (max_series): past it, new label values all
// land in one series whose label values are "_other", so a LAN peer that
// invents names cannot grow the registry (or a Prometheus server's memory)
// without bound. Values that are cheap to compute when scraped (store
// size, free space, sessions) are not kept here at all: the scrape fills a
// Registry of its own and renders both (see render()).
//
// One process-wide registry (registry()) collects what the listeners and
// the serve layer count; tests that need isolation make their own.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace bootfleet::util::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v);
  void add(double d);
  double value() const;

 private:
  mutable std::mutex mutex_;
  double value_ = 0;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (= count)
    double sum = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> buckets_;  // per bound, then the +Inf bucket (not cumulative)
  double sum_ = 0;
};

enum class Type { kCounter, kGauge, kHistogram };

class Registry {
 public:
  static constexpr size_t kDefaultMaxSeries = 1000;
  static constexpr const char* kOverflow = "_other";

  // The series of family `name` with `labels` (label names in the same
  // order on every call), made on first use. `help` and `max_series` are
  // taken from the first call. Throws util::Error when `name` or a label
  // name is not a valid Prometheus name, or when a family is used as two
  // types or with other label names: both are programming errors worth
  // failing loudly on.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {},
                   size_t max_series = kDefaultMaxSeries);
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {},
               size_t max_series = kDefaultMaxSeries);
  Histogram& histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                       const Labels& labels = {}, size_t max_series = kDefaultMaxSeries);

  // The value of a counter or gauge series, 0 when it does not exist (for
  // the status page and tests).
  double value(const std::string& name, const Labels& labels = {});
  // Every series of a family: label values (in label-name order) -> value.
  std::vector<std::pair<Labels, double>> series(const std::string& name);

  // Appends every family in the text exposition format, families in name
  // order, series in label order.
  void render(std::string& out) const;

 private:
  struct Family {
    std::string help;
    Type type;
    std::vector<std::string> label_names;
    size_t max_series;
    std::vector<double> bounds;  // histograms
    std::map<std::vector<std::string>, std::unique_ptr<Counter>> counters;
    std::map<std::vector<std::string>, std::unique_ptr<Gauge>> gauges;
    std::map<std::vector<std::string>, std::unique_ptr<Histogram>> histograms;
    size_t size() const { return counters.size() + gauges.size() + histograms.size(); }
  };
  // The family and the key of `labels` in it (the overflow key when full).
  std::pair<Family*, std::vector<std::string>> find(const std::string& name, const std::string& help, Type type,
                                                     const Labels& labels, size_t max_series);

  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

// The process-wide registry.
Registry& registry();

// The series every protocol has (protocol: "nbd", "iscsi", "http",
// "tftp"), in the process-wide registry: connections accepted, refused by
// the limits and open now, and requests answered with an error. One
// definition, so every listener counts under the same names and help.
struct ProtocolMetrics {
  explicit ProtocolMetrics(const std::string& protocol);
  Counter& accepted;
  Counter& refused;
  Gauge& open;
  Counter& errors;
};

// A label value as the format writes it inside quotes (\\, \", \n escaped).
std::string escape_label_value(const std::string& value);
// A sample value: integers without a fraction, +Inf, NaN.
std::string format_value(double v);

}  // namespace bootfleet::util::metrics
