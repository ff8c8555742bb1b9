// One call of a control-API route, and what it answers: what the route
// table of Api (api.cc) hands each handler once the gates (API on,
// transport, token) have passed and the method and path have matched.
//
// Design note. The table is the only list of routes: a request whose path
// matches no pattern is 404, one whose path matches but whose method is not
// listed for it is 405 with an Allow header built from the same rows, so
// Allow can never disagree with what is served. Patterns are the wire
// layer's (api/paths.h), the ones imgtool builds its requests from;
// docs/api.md's SYNOPSIS lists the same rows (api_test checks it).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/server.h"
#include "serve/exports.h"

namespace bootfleet::bootsrv {

struct ApiAnswer {
  int status = 200;
  nlohmann::json body;
};

struct ApiCall {
  const http::Request& request;
  std::string method;               // the request's, GET for HEAD
  std::vector<std::string> values;  // the route pattern's {fields}, in order
  std::string who;                  // the token's name: "api:WHO" in the history
  std::string who_log;              // "api WHO (PEER)", for log lines of changes
  http::Body& body;
  serve::StoreExports& exports;
  std::string store_dir;  // for changes that open a store connection of their own

  const std::string& value(size_t i) const { return values.at(i); }
  // The request's path without its query, for messages.
  std::string path() const { return request.target.substr(0, request.target.find('?')); }
};

}  // namespace bootfleet::bootsrv
