#include "util/metrics.h"

#include <cmath>
#include <cstdio>

#include "util/error.h"

namespace bootfleet::util::metrics {

namespace {

bool valid_name(const std::string& name, bool label) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return !(label && name.rfind("__", 0) == 0);
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

// {a="x",b="y"} (with `extra` appended, for le), or "" without labels.
std::string label_text(const std::vector<std::string>& names, const std::vector<std::string>& values,
                       const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "{" : ",") + extra;
  if (!out.empty()) out += "}";
  return out;
}

// HELP text escapes only backslash and newline.
std::string escape_help(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

void Gauge::set(double v) {
  std::lock_guard lock(mutex_);
  value_ = v;
}

void Gauge::add(double d) {
  std::lock_guard lock(mutex_);
  value_ += d;
}

double Gauge::value() const {
  std::lock_guard lock(mutex_);
  return value_;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard lock(mutex_);
  ++buckets_[i];
  sum_ += v;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mutex_);
  uint64_t total = 0;
  for (uint64_t b : buckets_) {
    total += b;
    s.cumulative.push_back(total);
  }
  s.sum = sum_;
  return s;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::pair<Registry::Family*, std::vector<std::string>> Registry::find(const std::string& name,
                                                                      const std::string& help, Type type,
                                                                      const Labels& labels, size_t max_series) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    if (!valid_name(name, false)) throw Error("metric name '" + name + "' is not [a-zA-Z_:][a-zA-Z0-9_:]*");
    Family f;
    f.help = help;
    f.type = type;
    f.max_series = max_series ? max_series : 1;
    for (const auto& [k, v] : labels) {
      if (!valid_name(k, true) || k == "le") {
        throw Error("metric " + name + ": label name '" + k + "' is not [a-zA-Z_][a-zA-Z0-9_]* (nor le, nor __…)");
      }
      f.label_names.push_back(k);
    }
    it = families_.emplace(name, std::move(f)).first;
  }
  Family& f = it->second;
  if (f.type != type) {
    throw Error(std::string("metric ") + name + " is a " + type_name(f.type) + ", used as a " + type_name(type));
  }
  std::vector<std::string> key;
  bool same = labels.size() == f.label_names.size();
  for (size_t i = 0; same && i < labels.size(); ++i) {
    same = labels[i].first == f.label_names[i];
    key.push_back(labels[i].second);
  }
  if (!same) throw Error("metric " + name + " used with other label names than at its first use");
  bool known = f.counters.count(key) || f.gauges.count(key) || f.histograms.count(key);
  // Bounded cardinality: one series more than max_series, the overflow.
  if (!known && f.size() >= f.max_series) key.assign(key.size(), kOverflow);
  return {&f, key};
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels,
                           size_t max_series) {
  std::lock_guard lock(mutex_);
  auto [f, key] = find(name, help, Type::kCounter, labels, max_series);
  auto& slot = f->counters[key];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels, size_t max_series) {
  std::lock_guard lock(mutex_);
  auto [f, key] = find(name, help, Type::kGauge, labels, max_series);
  auto& slot = f->gauges[key];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help, const std::vector<double>& bounds,
                               const Labels& labels, size_t max_series) {
  std::lock_guard lock(mutex_);
  auto [f, key] = find(name, help, Type::kHistogram, labels, max_series);
  if (f->bounds.empty()) f->bounds = bounds;
  auto& slot = f->histograms[key];
  if (!slot) slot = std::make_unique<Histogram>(f->bounds);
  return *slot;
}

double Registry::value(const std::string& name, const Labels& labels) {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  std::vector<std::string> key;
  for (const auto& l : labels) key.push_back(l.second);
  if (auto c = it->second.counters.find(key); c != it->second.counters.end()) return double(c->second->value());
  if (auto g = it->second.gauges.find(key); g != it->second.gauges.end()) return g->second->value();
  return 0;
}

std::vector<std::pair<Labels, double>> Registry::series(const std::string& name) {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<Labels, double>> out;
  auto it = families_.find(name);
  if (it == families_.end()) return out;
  const Family& f = it->second;
  auto labels_of = [&](const std::vector<std::string>& key) {
    Labels l;
    for (size_t i = 0; i < key.size(); ++i) l.emplace_back(f.label_names[i], key[i]);
    return l;
  };
  for (const auto& [key, c] : f.counters) out.emplace_back(labels_of(key), double(c->value()));
  for (const auto& [key, g] : f.gauges) out.emplace_back(labels_of(key), g->value());
  return out;
}

void Registry::render(std::string& out) const {
  std::lock_guard lock(mutex_);
  for (const auto& [name, f] : families_) {
    if (f.size() == 0) continue;
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + type_name(f.type) + "\n";
    for (const auto& [key, c] : f.counters) {
      out += name + label_text(f.label_names, key) + " " + std::to_string(c->value()) + "\n";
    }
    for (const auto& [key, g] : f.gauges) {
      out += name + label_text(f.label_names, key) + " " + format_value(g->value()) + "\n";
    }
    for (const auto& [key, h] : f.histograms) {
      Histogram::Snapshot s = h->snapshot();
      for (size_t i = 0; i <= s.bounds.size(); ++i) {
        std::string le = i < s.bounds.size() ? format_value(s.bounds[i]) : "+Inf";
        out += name + "_bucket" + label_text(f.label_names, key, "le=\"" + le + "\"") + " " +
               std::to_string(s.cumulative[i]) + "\n";
      }
      out += name + "_sum" + label_text(f.label_names, key) + " " + format_value(s.sum) + "\n";
      out += name + "_count" + label_text(f.label_names, key) + " " + std::to_string(s.cumulative.back()) + "\n";
    }
  }
}

ProtocolMetrics::ProtocolMetrics(const std::string& protocol)
    : accepted(registry().counter("bootfleet_connections_total", "Connections accepted (TFTP: transfers), by protocol",
                                  {{"protocol", protocol}})),
      refused(registry().counter("bootfleet_connections_refused_total",
                                 "Connections refused by the per-peer or total limits, by protocol",
                                 {{"protocol", protocol}})),
      open(registry().gauge("bootfleet_connections_open", "Connections open now, by protocol", {{"protocol", protocol}})),
      errors(registry().counter("bootfleet_protocol_errors_total",
                                "Requests answered with an error (NBD/iSCSI: I/O errors and refused exports; HTTP: "
                                "4xx/5xx; TFTP: ERROR packets)",
                                {{"protocol", protocol}})) {}

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: threads may count while the process exits
  return *r;
}

}  // namespace bootfleet::util::metrics
