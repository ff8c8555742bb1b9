// replay_boot: replays a recorded network boot (a trace from record_boot.sh;
// format in README.md here) as N PCs booting at once, without QEMU, and
// reports each PC's time to "root mounted" and to "boot done".
//
//   replay_boot TRACE --http URL [--clients N] [--think keep|compress]
//               [--peer-port-base P] [--json]
//
// Each PC i (0-based) is MAC 52:54:00:9b:HH:LL with HHLL = i + 1 (the bench
// registers them): it fetches /boot/MAC.ipxe from URL, which starts its
// named session, then the kernel and initrd the script names, then opens
// the NBD export the script names (nbdroot=HOST:PORT/IMAGE/CLIENT) and
// sends the trace's requests. With --peer-port-base P the NBD requests go
// to nbd://127.0.0.1:(P+i)/ instead (one peer server per PC) and the HTTP
// fetches still go to URL.
//
// Dependencies. The recording knows when each request started and ended,
// not why; the replay keeps the one order that the guest could not have
// broken: a request that started after another had ended waits for it.
// So request i may start once every request that had ended before i
// started (in the recording) has ended here, and requests that overlapped
// in the recording overlap here. --think keep adds the recorded gap between
// the last of those ends and i's start (the guest's own work, e.g. the
// kernel booting under TCG: a replayed PC then takes as long as a real one
// plus whatever waiting the server adds); --think compress (the default)
// drops it, so every PC asks as fast as the server answers: the harder
// load, and the one that shows the server.
//
// One thread per PC, each driving its own libnbd handle asynchronously and
// libcurl for its HTTP fetches, all released at once. Errors (HTTP status,
// a size other than the trace's, an NBD error, a lost connection) are
// counted, never fatal, and the exit status is 1 when there were any.
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
extern "C" {
#include <libnbd.h>
}

namespace {

using Clock = std::chrono::steady_clock;

struct Event {
  double start_ms = 0, end_ms = 0;
  char op = 0;            // H (HTTP), R W F T Z C X (NBD)
  std::string kind;       // H: script, vmlinuz, initrd.img
  uint64_t offset = 0, length = 0;
  bool fua = false;
  size_t deps = 0;        // events that had ended before this one started
  double think_ms = 0;    // from the last of those ends to this start
};

struct Trace {
  std::vector<Event> events;  // by start
  std::vector<size_t> by_end; // indexes into events, by end
  struct Mark {
    std::string name;
    double at_ms = 0;
    size_t deps = 0;
    double think_ms = 0;
  };
  std::vector<Mark> marks;
  uint64_t max_length = 0;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "replay_boot: %s\n", message.c_str());
  std::exit(2);
}

// The number of events (in by_end order) that end before `at_ms`, and the
// gap from the last of them to it. An event that ends exactly when event
// `self` starts counts when it comes first in start order (an HTTP fetch
// recorded as starting when the one before it ended); `self` never
// counts itself.
std::pair<size_t, double> deps_before(const Trace& t, double at_ms, size_t self = SIZE_MAX) {
  auto before = [&](size_t j) {
    const double end = t.events[j].end_ms;
    return end < at_ms || (end == at_ms && j < self);
  };
  size_t lo = 0, hi = t.by_end.size();
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (before(t.by_end[mid])) lo = mid + 1; else hi = mid;
  }
  double last_end = lo ? t.events[t.by_end[lo - 1]].end_ms : 0.0;
  return {lo, std::max(0.0, at_ms - last_end)};
}

Trace load_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_error("cannot open the trace " + path);
  Trace t;
  std::string line;
  int lineno = 0;
  int first_connection = -1;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    auto bad = [&](const std::string& why) {
      usage_error(path + ":" + std::to_string(lineno) + ": " + why + " (README.md: START_MS END_MS OP …)");
    };
    double a = 0, b = 0;
    std::string second, op;
    if (!(s >> a >> second)) bad("expected a time and a second field");
    if (second == "M") {
      std::string name;
      if (!(s >> name)) bad("a mark needs a name");
      t.marks.push_back({name, a, 0, 0});
      continue;
    }
    try {
      b = std::stod(second);
    } catch (const std::exception&) {
      bad("END_MS '" + second + "' is not a number");
    }
    if (!(s >> op) || op.size() != 1) bad("expected an operation letter");
    Event e;
    e.start_ms = a;
    e.end_ms = b;
    e.op = op[0];
    if (b < a || a < 0) bad("the event ends before it starts");
    if (e.op == 'H') {
      if (!(s >> e.kind >> e.length)) bad("H needs KIND BYTES");
      if (e.kind != "script" && e.kind != "vmlinuz" && e.kind != "initrd.img") bad("unknown HTTP kind " + e.kind);
    } else if (std::string("RWFTZCX").find(e.op) != std::string::npos) {
      std::string flags;
      int connection = 0;
      if (!(s >> e.offset >> e.length >> flags >> connection)) bad("NBD needs OFFSET LENGTH FLAGS CONNECTION");
      // One nbd-client, one connection: a trace with more (a reconnect,
      // multi-conn) needs a replay that opens them in turn.
      if (first_connection == -1) first_connection = connection;
      if (connection != first_connection) bad("a second NBD connection; replay_boot replays one");
      e.fua = flags.find("fua") != std::string::npos;
      if ((e.op == 'R' || e.op == 'W') && (e.length == 0 || e.length > (32u << 20))) bad("a length of 1 byte to 32 MiB");
    } else {
      bad(std::string("unknown operation '") + e.op + "'");
    }
    t.max_length = std::max(t.max_length, e.op == 'H' ? 0 : e.length);
    t.events.push_back(std::move(e));
  }
  if (t.events.empty()) usage_error(path + ": no events");
  if (t.events.front().op != 'H' || t.events.front().kind != "script") usage_error(path + ": the first event must be the boot script's fetch");
  std::stable_sort(t.events.begin(), t.events.end(), [](const Event& x, const Event& y) { return x.start_ms < y.start_ms; });
  for (size_t i = 0; i < t.events.size(); ++i) t.by_end.push_back(i);
  std::stable_sort(t.by_end.begin(), t.by_end.end(),
                   [&](size_t x, size_t y) { return t.events[x].end_ms < t.events[y].end_ms; });
  for (size_t i = 0; i < t.events.size(); ++i) std::tie(t.events[i].deps, t.events[i].think_ms) = deps_before(t, t.events[i].start_ms, i);
  for (auto& m : t.marks) std::tie(m.deps, m.think_ms) = deps_before(t, m.at_ms);
  for (const char* needed : {"root", "done"}) {
    if (std::none_of(t.marks.begin(), t.marks.end(), [&](const Trace::Mark& m) { return m.name == needed; }))
      usage_error(path + ": no '" + needed + "' mark (a line 'MS M " + needed + "')");
  }
  return t;
}

struct Options {
  std::string trace, http;
  int clients = 1;
  bool keep_think = false;
  int peer_port_base = 0;
  bool json = false;
  std::string per_client;  // a file: one line per PC, "INDEX HTTP_MS ROOT_MS DONE_MS ERRORS"
};

struct Result {
  double script_ms = -1;  // the boot script (the session's start) was in
  double http_ms = -1;  // the last HTTP fetch (the initrd) ended: the NBD part starts
  double root_ms = -1, done_ms = -1;
  uint64_t errors = 0;
  std::string first_error;
};

size_t discard(char*, size_t size, size_t n, void* counter) {
  *static_cast<uint64_t*>(counter) += size * n;
  return size * n;
}
size_t keep(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

class Pc {
 public:
  Pc(const Trace& t, const Options& o, int index) : t_(t), o_(o), index_(index) {}

  Result run(std::barrier<>& start) {
    start.arrive_and_wait();
    origin_ = Clock::now();
    done_at_.assign(t_.events.size(), -1);
    ready_at_.assign(t_.events.size() + 1, 0.0);
    ended_.assign(t_.events.size(), false);
    buffer_.assign(std::max<uint64_t>(t_.max_length, 1), static_cast<uint8_t>(index_));
    curl_ = curl_easy_init();
    size_t next = 0;
    while (prefix_ < t_.events.size() && !failed_hard_) {
      // Issue what is due, in start order (deps only grow along it).
      double wait_ms = -1;
      while (next < t_.events.size() && t_.events[next].deps <= prefix_) {
        const Event& e = t_.events[next];
        double due = ready_at_[e.deps] + (o_.keep_think ? e.think_ms : 0.0);
        double now = elapsed();
        if (due > now) { wait_ms = due - now; break; }
        issue(next++);
        if (failed_hard_) break;
      }
      if (failed_hard_) break;
      if (nbd_ && nbd_aio_in_flight(nbd_) > 0) {
        int timeout = wait_ms < 0 ? 1000 : std::max(0, static_cast<int>(wait_ms));
        if (nbd_poll(nbd_, timeout) == -1) hard_error(std::string("NBD: ") + nbd_get_error());
      } else if (wait_ms >= 0) {
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(wait_ms));
      } else if (next >= t_.events.size() || t_.events[next].deps > prefix_) {
        // Nothing in flight and nothing due: the trace is inconsistent.
        if (prefix_ < t_.events.size()) hard_error("the replay is stuck (an event waits for itself)");
      }
    }
    Result r;
    r.http_ms = http_done_ms_;
    r.script_ms = done_at_.empty() ? -1 : done_at_[0];
    r.errors = errors_;
    r.first_error = first_error_;
    if (!failed_hard_) {
      for (const auto& m : t_.marks) {
        double at = ready_at_[m.deps] + (o_.keep_think ? m.think_ms : 0.0);
        if (m.name == "root") r.root_ms = at;
        if (m.name == "done") r.done_ms = at;
      }
    }
    if (nbd_) {
      nbd_shutdown(nbd_, 0);
      nbd_close(nbd_);
    }
    curl_easy_cleanup(curl_);
    return r;
  }

 private:
  double elapsed() const { return std::chrono::duration<double, std::milli>(Clock::now() - origin_).count(); }

  void error(const std::string& what) {
    if (errors_++ == 0) first_error_ = what;
  }
  void hard_error(const std::string& what) {
    error(what);
    failed_hard_ = true;
  }

  void ended(size_t i) {
    ended_[i] = true;
    done_at_[i] = elapsed();
    // Advance the prefix of ended events (in recorded end order).
    while (prefix_ < t_.by_end.size() && ended_[t_.by_end[prefix_]]) {
      ready_at_[prefix_ + 1] = std::max(ready_at_[prefix_], done_at_[t_.by_end[prefix_]]);
      ++prefix_;
    }
  }

  std::string mac_hyphens() const {
    char mac[32];
    std::snprintf(mac, sizeof mac, "52-54-00-9b-%02x-%02x", ((index_ + 1) >> 8) & 0xff, (index_ + 1) & 0xff);
    return mac;
  }

  void http(size_t i) {
    const Event& e = t_.events[i];
    std::string url;
    if (e.kind == "script") url = o_.http + "/boot/" + mac_hyphens() + ".ipxe";
    else if (e.kind == "vmlinuz") url = kernel_url_;
    else url = initrd_url_;
    if (url.empty()) return hard_error("the boot script named no " + e.kind);
    std::string body;
    uint64_t bytes = 0;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 300L);
    if (e.kind == "script") {
      curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, keep);
      curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &body);
    } else {
      curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, discard);
      curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &bytes);
    }
    CURLcode rc = curl_easy_perform(curl_);
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) return hard_error("GET " + url + ": " + curl_easy_strerror(rc));
    if (status != 200) return hard_error("GET " + url + ": HTTP " + std::to_string(status));
    if (e.kind == "script") {
      std::smatch m;
      if (std::regex_search(body, m, std::regex(R"(^kernel (\S+))", std::regex::multiline))) kernel_url_ = m[1];
      if (std::regex_search(body, m, std::regex(R"(^initrd (\S+))", std::regex::multiline))) initrd_url_ = m[1];
      if (std::regex_search(body, m, std::regex(R"(nbdroot=([^:\s]+):(\d+)/(\S+))"))) {
        nbd_uri_ = "nbd://" + m[1].str() + ":" + m[2].str() + "/" + m[3].str();
      }
      if (kernel_url_.empty() || nbd_uri_.empty()) return hard_error("GET " + url + ": not a Linux boot script: " + body.substr(0, 200));
    } else if (bytes != e.length) {
      error("GET " + url + ": " + std::to_string(bytes) + " bytes, the trace has " + std::to_string(e.length) +
            " (another image?)");
    }
    ended(i);
    http_done_ms_ = done_at_[i];
  }

  static int on_done(void* user, int* err) {
    auto* c = static_cast<Completion*>(user);
    if (*err) c->pc->error(std::string("NBD ") + c->op + " failed: " + std::strerror(*err));
    c->pc->ended(c->index);
    return 1;  // retire the command
  }
  struct Completion {
    Pc* pc;
    size_t index;
    char op;
  };

  void issue(size_t i) {
    const Event& e = t_.events[i];
    if (e.op == 'H') return http(i);
    if (!nbd_) {
      std::string uri = nbd_uri_;
      if (o_.peer_port_base) uri = "nbd://127.0.0.1:" + std::to_string(o_.peer_port_base + index_) + "/";
      if (uri.empty()) return hard_error("an NBD request before the boot script named the export");
      nbd_ = nbd_create();
      if (!nbd_ || nbd_connect_uri(nbd_, uri.c_str()) == -1) return hard_error("connect " + uri + ": " + nbd_get_error());
    }
    completions_.push_back(std::make_unique<Completion>(Completion{this, i, e.op}));
    nbd_completion_callback cb = {on_done, completions_.back().get(), nullptr};
    uint32_t fua = e.fua ? LIBNBD_CMD_FLAG_FUA : 0;
    int64_t cookie = 0;
    switch (e.op) {
      case 'R': cookie = nbd_aio_pread(nbd_, buffer_.data(), e.length, e.offset, cb, 0); break;
      case 'W': cookie = nbd_aio_pwrite(nbd_, buffer_.data(), e.length, e.offset, cb, fua); break;
      case 'F': cookie = nbd_aio_flush(nbd_, cb, 0); break;
      case 'T': cookie = nbd_aio_trim(nbd_, e.length, e.offset, cb, fua); break;
      case 'Z': cookie = nbd_aio_zero(nbd_, e.length, e.offset, cb, fua); break;
      case 'C': cookie = nbd_aio_cache(nbd_, e.length, e.offset, cb, 0); break;
      case 'X': {
        // The guest asked for extents; asking for them too costs the
        // server the same. The answer itself is not checked.
        nbd_extent_callback ext = {[](void*, const char*, uint64_t, uint32_t*, size_t, int*) { return 0; }, nullptr,
                                   nullptr};
        cookie = nbd_aio_block_status(nbd_, e.length, e.offset, ext, cb, 0);
        break;
      }
    }
    if (cookie == -1) {
      error(std::string("NBD ") + e.op + ": " + nbd_get_error());
      ended(i);  // not sent: counted, and the replay goes on
    }
  }

  const Trace& t_;
  const Options& o_;
  int index_;
  Clock::time_point origin_;
  std::vector<double> done_at_, ready_at_;
  std::vector<bool> ended_;
  size_t prefix_ = 0;
  std::vector<uint8_t> buffer_;
  std::vector<std::unique_ptr<Completion>> completions_;
  CURL* curl_ = nullptr;
  nbd_handle* nbd_ = nullptr;
  std::string kernel_url_, initrd_url_, nbd_uri_;
  uint64_t errors_ = 0;
  std::string first_error_;
  bool failed_hard_ = false;
  double http_done_ms_ = -1;
};

double pct(std::vector<double> xs, double p) {
  if (xs.empty()) return 0;
  std::sort(xs.begin(), xs.end());
  return xs[std::min(xs.size() - 1, static_cast<size_t>(p / 100.0 * xs.size()))];
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](int lo, int hi) {
      std::string v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || n < lo || n > hi)
        usage_error(a + " '" + v + "': a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
      return static_cast<int>(n);
    };
    if (a == "--help" || a == "-h") {
      std::printf(
          "Usage: replay_boot TRACE --http URL [--clients N] [--think keep|compress] [--peer-port-base P] [--json]\n"
          "       [--per-client FILE]\n"
          "Replays a recorded boot (tests/bench/boot/README.md) as N PCs at once; prints time to root mounted\n"
          "and to boot done (p50/p99/max, ms) and errors. PC i is MAC 52:54:00:9b:HH:LL, HHLL = i + 1.\n");
      std::exit(0);
    } else if (a == "--http") {
      o.http = value();
    } else if (a == "--clients") {
      o.clients = number(1, 4096);
    } else if (a == "--think") {
      std::string v = value();
      if (v != "keep" && v != "compress") usage_error("--think '" + v + "': keep or compress");
      o.keep_think = v == "keep";
    } else if (a == "--peer-port-base") {
      o.peer_port_base = number(1, 65535);
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--per-client") {
      o.per_client = value();
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option " + a + " (--help)");
    } else if (o.trace.empty()) {
      o.trace = a;
    } else {
      usage_error("one trace only (got '" + a + "' too)");
    }
  }
  if (o.trace.empty() || o.http.empty()) usage_error("a TRACE and --http URL are needed (--help)");
  if (o.peer_port_base && o.peer_port_base + o.clients - 1 > 65535) usage_error("--peer-port-base + --clients passes 65535");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  Trace trace = load_trace(o.trace);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::vector<Result> results(o.clients);
  std::barrier start(o.clients + 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.clients; ++i) {
    threads.emplace_back([&, i] {
      Pc pc(trace, o, i);
      results[i] = pc.run(start);
    });
  }
  auto t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  double wall = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::vector<double> script, http, nbd_root, root, done;
  uint64_t errors = 0;
  int failed = 0;
  std::string first;
  for (const auto& r : results) {
    errors += r.errors;
    if (r.errors && first.empty()) first = r.first_error;
    if (r.root_ms < 0 || r.done_ms < 0) { ++failed; continue; }
    script.push_back(r.script_ms);
    http.push_back(r.http_ms);
    nbd_root.push_back(r.root_ms - r.http_ms);
    root.push_back(r.root_ms);
    done.push_back(r.done_ms);
  }
  if (!o.per_client.empty()) {
    std::FILE* f = std::fopen(o.per_client.c_str(), "w");
    if (!f) usage_error("cannot write " + o.per_client + ": " + std::strerror(errno));
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::fprintf(f, "%zu %.1f %.1f %.1f %llu\n", i, r.http_ms, r.root_ms, r.done_ms,
                   static_cast<unsigned long long>(r.errors));
    }
    std::fclose(f);
  }
  const char* think = o.keep_think ? "keep" : "compress";
  if (o.json) {
    std::printf(
        "{\"clients\": %d, \"think\": \"%s\", \"errors\": %llu, \"unfinished\": %d, \"wall_ms\": %.1f, "
        "\"script_ms\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
        "\"http_ms\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
        "\"nbd_root_ms\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
        "\"root_ms\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}, "
        "\"done_ms\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}}\n",
        o.clients, think, static_cast<unsigned long long>(errors), failed, wall, pct(script, 50), pct(script, 99),
        pct(script, 100), pct(http, 50), pct(http, 99), pct(http, 100), pct(nbd_root, 50), pct(nbd_root, 99),
        pct(nbd_root, 100), pct(root, 50), pct(root, 99),
        pct(root, 100), pct(done, 50), pct(done, 99), pct(done, 100));
  } else {
    std::printf("%d clients (think times: %s), %llu errors, %d unfinished, %.1f s in all\n", o.clients, think,
                static_cast<unsigned long long>(errors), failed, wall / 1000);
    std::printf("  boot script:  p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", pct(script, 50), pct(script, 99), pct(script, 100));
    std::printf("  NBD to root:  p50 %.0f ms, p99 %.0f ms, max %.0f ms (from the end of the HTTP part)\n",
                pct(nbd_root, 50), pct(nbd_root, 99), pct(nbd_root, 100));
    std::printf("  HTTP done:    p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", pct(http, 50), pct(http, 99), pct(http, 100));
    std::printf("  root mounted: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", pct(root, 50), pct(root, 99), pct(root, 100));
    std::printf("  boot done:    p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", pct(done, 50), pct(done, 99), pct(done, 100));
  }
  if (!first.empty()) std::fprintf(stderr, "replay_boot: first error: %s\n", first.c_str());
  curl_global_cleanup();
  return errors || failed ? 1 : 0;
}
