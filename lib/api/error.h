// An answer of the control API other than success: the HTTP status and a
// message that names what is wrong and what would be right. bootsrv turns
// it into {"error":{"status":N,"message":"…"}} plus any `extra` fields
// (e.g. "received" with a 409 on a wrong offset, "allow" with a 405).
// The wire readers (upload.h, fields.h) throw it with status 400, so the
// server answers a bad body with the reader's own words.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/error.h"

namespace bootfleet::api {

class ApiError : public util::Error {
 public:
  ApiError(int status, const std::string& message, nlohmann::json extra = nlohmann::json::object())
      : util::Error(message), status_(status), extra_(std::move(extra)) {}
  int status() const { return status_; }
  const nlohmann::json& extra() const { return extra_; }

 private:
  int status_;
  nlohmann::json extra_;
};

}  // namespace bootfleet::api
