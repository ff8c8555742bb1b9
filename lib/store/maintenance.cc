// The catalog side of maintenance sessions (store/maintenance.h): Store's
// members that start, list, find and end them. Checks and the insert run in
// one IMMEDIATE transaction, so two `maintenance start` racing for one image
// (or one client) cannot both succeed; the UNIQUE columns back that up.
#include <chrono>

#include "store/store.h"
#include "util/error.h"
#include "util/uuid.h"

namespace bootfleet::store {

using util::Error;

namespace {

const char* kMaintenanceColumns = "i.name, m.client, m.base, m.token, m.started_at, m.started_by";

MaintenanceInfo read_maintenance_row(Statement& st) {
  return {st.text(0), st.text(1), st.int64(2), st.text(3), st.int64(4), st.text(5)};
}

std::string describe(const MaintenanceInfo& m) {
  return m.client + " on " + m.image + "@" + std::to_string(m.base) + ", started by " + m.started_by;
}

}  // namespace

MaintenanceInfo Store::start_maintenance(const std::string& image_name, const std::string& client_key,
                                         std::optional<int64_t> from, const std::string& by) {
  Transaction tx(*db_);
  ImageInfo info = image(image_name);  // throws, listing the images
  ClientInfo c = client(client_key);   // throws, listing the clients
  if (!from && !info.active) {
    throw Error(image_name + " has no active version to start a maintenance session from; name one with --from " +
                image_name + "@N");
  }
  VersionInfo base = version({image_name, from ? from : info.active, false});  // throws, listing the versions
  if (auto m = find_maintenance(image_name)) {
    throw Error(image_name + " already has a maintenance session (" + describe(*m) +
                "); one image has one at a time: commit it ('imgtool maintenance commit " + image_name +
                " -m MSG') or discard it ('imgtool maintenance discard " + image_name + "') first");
  }
  if (auto m = maintenance_of_client(c.name)) {
    throw Error("client " + c.name + " is already in a maintenance session of " + m->image + " (" + describe(*m) +
                "); a client is in one at a time");
  }
  MaintenanceInfo m{image_name, c.name, base.number, util::uuid_to_string(util::random_uuid()),
                    std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count(),
                    by};
  db_->prepare(
         "INSERT INTO maintenance (image_id, client, base, token, started_at, started_by) "
         "VALUES ((SELECT id FROM images WHERE name = ?), ?, ?, ?, ?, ?)")
      .bind(1, m.image).bind(2, m.client).bind(3, m.base).bind(4, m.token).bind(5, m.started_at).bind(6, m.started_by)
      .run();
  tx.commit();
  return m;
}

std::vector<MaintenanceInfo> Store::maintenance_sessions() {
  auto st = db_->prepare(std::string("SELECT ") + kMaintenanceColumns +
                         " FROM maintenance m JOIN images i ON i.id = m.image_id ORDER BY i.name");
  std::vector<MaintenanceInfo> out;
  while (st.step()) out.push_back(read_maintenance_row(st));
  return out;
}

std::optional<MaintenanceInfo> Store::find_maintenance(const std::string& image_name) {
  auto st = db_->prepare(std::string("SELECT ") + kMaintenanceColumns +
                         " FROM maintenance m JOIN images i ON i.id = m.image_id WHERE i.name = ?");
  st.bind(1, image_name);
  if (st.step()) return read_maintenance_row(st);
  return std::nullopt;
}

std::optional<MaintenanceInfo> Store::maintenance_of_client(const std::string& client_name) {
  auto st = db_->prepare(std::string("SELECT ") + kMaintenanceColumns +
                         " FROM maintenance m JOIN images i ON i.id = m.image_id WHERE m.client = ?");
  st.bind(1, client_name);
  if (st.step()) return read_maintenance_row(st);
  return std::nullopt;
}

MaintenanceInfo Store::maintenance(const std::string& image_name) {
  image(image_name);  // an unknown image is its own error, listing the images
  if (auto m = find_maintenance(image_name)) return *m;
  std::string list;
  for (const auto& m : maintenance_sessions()) list += (list.empty() ? "" : ", ") + m.image + " (" + m.client + ")";
  throw NotFound(image_name + " has no maintenance session (" +
                 (list.empty() ? std::string("no image has one") : "maintenance sessions: " + list) +
                 "); start one with 'imgtool maintenance start " + image_name + " --client NAME'");
}

bool Store::end_maintenance(const std::string& image_name, const std::string& token) {
  Transaction tx(*db_);
  auto st = db_->prepare(
      "DELETE FROM maintenance WHERE image_id = (SELECT id FROM images WHERE name = ?) AND token = ? RETURNING id");
  st.bind(1, image_name).bind(2, token);
  bool found = st.step();
  st.run();
  tx.commit();
  return found;
}

}  // namespace bootfleet::store
