#include "iscsi/server.h"

namespace bootfleet::iscsi {

Server::Server(Targets& targets, ConnectionOptions connection_options)
    : server_("iSCSI", [this, &targets, connection_options](int fd, const std::string& peer,
                                                            const std::atomic<bool>* stopping) {
        ConnectionOptions options = connection_options;
        options.stopping = stopping;
        serve_connection(fd, targets, sessions_, peer, options);
      }) {}

}  // namespace bootfleet::iscsi
