// Where each thing of the control API lives: every route under /api/v1/ is
// spelled once, here, as a pattern whose {fields} are single path segments.
// imgtool's remote side builds its request paths from these patterns
// (path()), and bootsrv's route table matches requests against the same
// patterns (match()), so a route renamed on one side is renamed on both.
// docs/api.md lists them with their methods, statuses and fields.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bootfleet::api {

inline constexpr std::string_view kPrefix = "/api/v1/";

namespace route {
inline constexpr const char* kHealthz = "healthz";
inline constexpr const char* kStatus = "status";
inline constexpr const char* kImages = "images";
inline constexpr const char* kVersions = "images/{image}/versions";
inline constexpr const char* kVersion = "images/{image}/versions/{version}";
inline constexpr const char* kHistory = "images/{image}/history";
inline constexpr const char* kChannels = "images/{image}/channels";
inline constexpr const char* kPublish = "images/{image}/publish";
inline constexpr const char* kRollback = "images/{image}/rollback";
inline constexpr const char* kPromote = "images/{image}/promote";
inline constexpr const char* kUploads = "images/{image}/uploads";
inline constexpr const char* kSession = "images/{image}/sessions/{client}";
inline constexpr const char* kImageMaintenance = "images/{image}/maintenance";
inline constexpr const char* kMaintenanceCommit = "images/{image}/maintenance/commit";
inline constexpr const char* kMaintenance = "maintenance";
inline constexpr const char* kClients = "clients";
inline constexpr const char* kClient = "clients/{key}";
inline constexpr const char* kSessions = "sessions";
inline constexpr const char* kGroups = "groups";
inline constexpr const char* kGroup = "groups/{name}";
inline constexpr const char* kSchedules = "schedules";
inline constexpr const char* kSchedule = "schedules/{id}";
inline constexpr const char* kUpload = "uploads/{upload}";
inline constexpr const char* kUploadDisk = "uploads/{upload}/disk";
inline constexpr const char* kUploadArtifact = "uploads/{upload}/artifacts/{name}";
inline constexpr const char* kUploadCommit = "uploads/{upload}/commit";
}  // namespace route

// "/api/v1/" + `pattern` with its {fields} replaced by `values`, in order.
// Values are names the caller has already validated; one that is empty or
// holds '/', '?', '#' or '%' would name another route, so it throws
// util::Error naming the field, as does a count that does not match.
std::string path(std::string_view pattern, std::initializer_list<std::string_view> values = {});

// The values of `pattern`'s {fields} when `segments` (the path after
// /api/v1/, split at '/') is an instance of it, else nullopt.
std::optional<std::vector<std::string>> match(std::string_view pattern, const std::vector<std::string>& segments);

}  // namespace bootfleet::api
