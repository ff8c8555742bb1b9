#include "iscsi/server.h"

namespace bootfleet::iscsi {

Server::Server(Targets& targets, ConnectionOptions connection_options, util::PeerLimits::Options limits)
    : server_(std::move(limits), [this, &targets, connection_options](const util::StreamServer::Connection& c) {
        ConnectionOptions options = connection_options;
        options.stopping = c.stopping;
        options.on_established = c.established;
        serve_connection(c.fd, targets, sessions_, c.peer, options);
      }) {}

Server::~Server() {
  stop();
  server_.wait();
}

void Server::start() {
  server_.start();
  expiry_ = std::thread([this] {
    std::unique_lock lock(expiry_mutex_);
    while (!expiry_wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
      lock.unlock();
      sessions_.expire();
      lock.lock();
    }
  });
}

void Server::stop() {
  {
    std::lock_guard lock(expiry_mutex_);
    stopping_ = true;
  }
  expiry_wake_.notify_all();
  if (expiry_.joinable()) expiry_.join();
  server_.stop();
}

}  // namespace bootfleet::iscsi
