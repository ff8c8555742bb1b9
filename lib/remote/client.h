// A client of bootsrv's control API (docs/api.md): JSON over HTTP or HTTPS
// with a bearer token, through libcurl (TLS, proxies, redirects refused).
//
// Design note. Every call is one request on a connection kept between calls;
// a failure becomes a RemoteError that names the server, the method and path,
// the HTTP status and the server's own message ("error.message" of its JSON),
// so a CI log says what was wrong without a second look. Upload bodies are
// streamed from a file range, never held in memory, with a progress callback.
// Nothing here knows about the store: imgtool push decides what to send.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "util/error.h"

namespace bootfleet::remote {

// A request the server answered with a non-2xx status (status > 0), or one
// that never got an answer (status 0: connection refused, TLS failure …).
class RemoteError : public util::Error {
 public:
  RemoteError(int status, const std::string& message) : util::Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct ClientOptions {
  std::string server;      // "http://127.0.0.1:8080", "https://boot.example:8443"
  std::string token;       // bearer token
  std::string ca_file;     // a CA bundle or self-signed certificate for HTTPS; empty: the system's
  long timeout_seconds = 60;  // for JSON calls; uploads time out on a stalled transfer instead
};

// Where the server and the token come from: the flags, else the environment
// ($BOOTFLEET_SERVER, $BOOTFLEET_TOKEN_FILE, $BOOTFLEET_CA_FILE). Throws
// util::Error saying which is missing and how to give it.
ClientOptions resolve_client_options(const std::string& server_flag, const std::string& token_file_flag,
                                     const std::string& ca_file_flag);

// The token in a token file: the first line that is not blank or a '#'
// comment; "NAME TOKEN" (bootsrv's own format) gives TOKEN. Throws naming
// the file when there is none.
std::string read_token_file(const std::string& path);

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& server() const { return options_.server; }

  // JSON calls. `path` starts with "/api/v1/"; parts taken from the user
  // must already be validated names (image, client). Returns the parsed
  // body (null for an empty one).
  nlohmann::json get(const std::string& path);
  nlohmann::json post(const std::string& path, const nlohmann::json& body);
  nlohmann::json del(const std::string& path);
  // Like get/post, but a 404 answer is returned as nullopt.
  std::optional<nlohmann::json> get_if_exists(const std::string& path);

  // PUT of bytes [offset, offset+length) of `file`, streamed; `progress`
  // sees bytes sent so far of this request. Returns the parsed answer.
  nlohmann::json put_file(const std::string& path, const std::string& file, uint64_t offset, uint64_t length,
                          const std::function<void(uint64_t sent)>& progress = {});

  // Status of the last answer (for callers that treat 200 and 201 apart).
  long last_status() const { return last_status_; }

 private:
  struct Exchange;
  nlohmann::json request(const std::string& method, const std::string& path, const std::string* body,
                         bool allow_404, bool* was_404);

  ClientOptions options_;
  void* curl_;  // CURL*, kept for connection reuse
  long last_status_ = 0;
};

}  // namespace bootfleet::remote
