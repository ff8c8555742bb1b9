#include "remote/client.h"

#include <curl/curl.h>
#include <fcntl.h>

#include <cstdlib>
#include <fstream>
#include <mutex>

#include "util/file.h"

namespace bootfleet::remote {

using util::Error;

namespace {

std::once_flag curl_initialised;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

size_t append_to_string(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct FileSource {
  int fd;
  const std::string* path;
  uint64_t offset;
  uint64_t remaining;
  uint64_t sent = 0;
  const std::function<void(uint64_t)>* progress;
  std::string error;
};

size_t read_from_file(char* buffer, size_t size, size_t count, void* user) {
  auto* source = static_cast<FileSource*>(user);
  size_t want = static_cast<size_t>(std::min<uint64_t>(size * count, source->remaining));
  if (want == 0) return 0;
  try {
    util::pread_full(source->fd, buffer, want, source->offset, *source->path);
  } catch (const Error& e) {
    source->error = e.what();
    return CURL_READFUNC_ABORT;
  }
  source->offset += want;
  source->remaining -= want;
  source->sent += want;
  if (*source->progress) (*source->progress)(source->sent);
  return want;
}

// The server's own words for a failed request: error.message of its JSON,
// else the start of the body.
std::string server_message(const std::string& body) {
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object() &&
      parsed["error"].contains("message") && parsed["error"]["message"].is_string()) {
    return parsed["error"]["message"].get<std::string>();
  }
  std::string text = body.substr(0, 300);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "(no message)" : text;
}

const char* reason(long status) {
  switch (status) {
    case 401: return " (no token was accepted: give --token-file or $BOOTFLEET_TOKEN_FILE)";
    case 403: return " (the token was refused)";
    default: return "";
  }
}

}  // namespace

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw util::errno_error("token file " + path);
  std::string line;
  while (std::getline(in, line)) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto last = line.find_last_not_of(" \t\r");
    std::string text = line.substr(first, last - first + 1);
    auto space = text.find_last_of(" \t");
    return space == std::string::npos ? text : text.substr(space + 1);
  }
  throw Error("token file " + path + " holds no token (one line: TOKEN, or NAME TOKEN as bootsrv's file has)");
}

ClientOptions resolve_client_options(const std::string& server_flag, const std::string& token_file_flag,
                                     const std::string& ca_file_flag) {
  ClientOptions options;
  options.server = !server_flag.empty() ? server_flag : env("BOOTFLEET_SERVER");
  if (options.server.empty()) {
    throw Error("no server: give --server URL (e.g. https://bootsrv.example:8443) or set $BOOTFLEET_SERVER");
  }
  if (options.server.rfind("http://", 0) != 0 && options.server.rfind("https://", 0) != 0) {
    throw Error("--server '" + options.server + "': expected a URL starting with http:// or https://");
  }
  while (options.server.size() > 8 && options.server.back() == '/') options.server.pop_back();
  std::string token_file = !token_file_flag.empty() ? token_file_flag : env("BOOTFLEET_TOKEN_FILE");
  if (token_file.empty()) {
    throw Error("no token: give --token-file FILE or set $BOOTFLEET_TOKEN_FILE (the file holds one of the "
                "server's api_tokens)");
  }
  options.token = read_token_file(token_file);
  options.ca_file = !ca_file_flag.empty() ? ca_file_flag : env("BOOTFLEET_CA_FILE");
  return options;
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
  if (!curl_) throw Error("cannot start an HTTP client (curl_easy_init failed)");
}

Client::~Client() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

nlohmann::json Client::get(const std::string& path) { return request("GET", path, nullptr, false, nullptr); }

std::optional<nlohmann::json> Client::get_if_exists(const std::string& path) {
  bool was_404 = false;
  auto answer = request("GET", path, nullptr, true, &was_404);
  if (was_404) return std::nullopt;
  return answer;
}

nlohmann::json Client::post(const std::string& path, const nlohmann::json& body) {
  std::string text = body.dump();
  return request("POST", path, &text, false, nullptr);
}

nlohmann::json Client::del(const std::string& path) { return request("DELETE", path, nullptr, false, nullptr); }

// One request's libcurl state: the options every call shares, set on the
// handle (reset first: the connection and TLS session stay for the next call).
struct Client::Exchange {
  Exchange(Client& client, const std::string& method, const std::string& path, const char* content_type)
      : curl(static_cast<CURL*>(client.curl_)), what(client.options_.server + ": " + method + " " + path) {
    curl_easy_reset(curl);
    url = client.options_.server + path;
    headers = curl_slist_append(headers, ("Authorization: Bearer " + client.options_.token).c_str());
    headers = curl_slist_append(headers, "Accept: application/json");
    if (content_type) headers = curl_slist_append(headers, (std::string("Content-Type: ") + content_type).c_str());
    headers = curl_slist_append(headers, "Expect:");  // send bodies at once; the server answers after them
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would carry the token elsewhere
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to_string);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    if (!client.options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, client.options_.ca_file.c_str());
  }
  ~Exchange() { curl_slist_free_all(headers); }

  // Runs the request; the status, or RemoteError(0, …) when there was no answer.
  long perform() {
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
      throw RemoteError(0, what + ": " + (error_buffer[0] ? error_buffer : curl_easy_strerror(rc)));
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
  }
  // The parsed 2xx answer; RemoteError naming the server's message otherwise.
  nlohmann::json result(long status) const {
    if (status < 200 || status > 299) {
      throw RemoteError(static_cast<int>(status),
                        what + ": " + std::to_string(status) + reason(status) + ": " + server_message(answer));
    }
    if (answer.empty()) return nullptr;
    auto parsed = nlohmann::json::parse(answer, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) throw RemoteError(0, what + ": the answer is not JSON: " + answer.substr(0, 200));
    return parsed;
  }

  CURL* curl;
  std::string what;
  std::string url;
  std::string answer;
  curl_slist* headers = nullptr;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

nlohmann::json Client::request(const std::string& method, const std::string& path, const std::string* body,
                               bool allow_404, bool* was_404) {
  Exchange exchange(*this, method, path, body ? "application/json" : nullptr);
  curl_easy_setopt(exchange.curl, CURLOPT_TIMEOUT, options_.timeout_seconds);
  if (method == "POST") {
    curl_easy_setopt(exchange.curl, CURLOPT_POSTFIELDS, body ? body->c_str() : "");
    curl_easy_setopt(exchange.curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body ? body->size() : 0));
  } else if (method != "GET") {
    curl_easy_setopt(exchange.curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  last_status_ = exchange.perform();
  if (allow_404 && last_status_ == 404) {
    *was_404 = true;
    return nullptr;
  }
  return exchange.result(last_status_);
}

nlohmann::json Client::put_file(const std::string& path, const std::string& file, uint64_t offset, uint64_t length,
                                const std::function<void(uint64_t)>& progress) {
  util::UniqueFd fd = util::open_file(file, O_RDONLY);
  FileSource source{fd.get(), &file, offset, length, 0, &progress, {}};
  Exchange exchange(*this, "PUT", path, "application/octet-stream");
  // A transfer that moves nothing for a minute is dead; a slow one is not.
  curl_easy_setopt(exchange.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(exchange.curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(exchange.curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(exchange.curl, CURLOPT_READFUNCTION, read_from_file);
  curl_easy_setopt(exchange.curl, CURLOPT_READDATA, &source);
  curl_easy_setopt(exchange.curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(length));
  try {
    last_status_ = exchange.perform();
  } catch (const RemoteError&) {
    if (!source.error.empty()) throw Error(exchange.what + ": " + source.error);
    throw;
  }
  return exchange.result(last_status_);
}

}  // namespace bootfleet::remote
