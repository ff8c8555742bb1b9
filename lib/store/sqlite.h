// A thin RAII layer over SQLite's C API: a connection, prepared statements
// with typed binds and reads, and transactions. Errors become util::Error
// carrying SQLite's message and the statement.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace bootfleet::store {

class Statement;

class Database {
 public:
  // Opens (creating if asked) the file with WAL journaling, foreign keys on
  // and a busy timeout, so that concurrent processes wait instead of failing.
  Database(const std::string& path, bool create);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const std::string& sql);
  Statement prepare(const std::string& sql);
  int64_t last_insert_rowid() const;
  int changes() const;
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Statement {
 public:
  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds are 1-based, as in SQLite.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, const std::string& value);
  Statement& bind(int index, std::span<const uint8_t> blob);
  Statement& bind_null(int index);
  Statement& bind(int index, const std::optional<int64_t>& value);
  Statement& bind(int index, const std::optional<std::string>& value);

  // Steps once: true when a row is available.
  bool step();
  // Runs a statement that returns no rows.
  void run();
  void reset();

  int64_t int64(int col) const;
  std::optional<int64_t> opt_int64(int col) const;
  std::string text(int col) const;
  std::optional<std::string> opt_text(int col) const;
  std::vector<uint8_t> blob(int col) const;

 private:
  [[noreturn]] void fail(const std::string& what) const;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

// BEGIN IMMEDIATE … COMMIT, rolled back unless commit() is reached. IMMEDIATE
// takes the write lock at the start, so two writers never both read a state
// and then race to change it.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace bootfleet::store
