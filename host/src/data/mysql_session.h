// MysqlSession: one Connector/C++ connection owned by one thread, with its
// prepared statements cached by SQL text. A connection-level error (client
// error codes >= 2000: gone away, lost, refused) drops the connection; the
// next call reconnects. No exception leaves this class: every call returns a
// Status naming what failed (never the password).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/record_codec.h"

namespace sql {
class Connection;
class PreparedStatement;
class ResultSet;
}  // namespace sql

namespace lampyr::data {

class MysqlSession : NonCopyable {
 public:
  explicit MysqlSession(const DbConfig& db);
  ~MysqlSession();

  // Connects if not connected. Cheap when already connected.
  Status Ensure();
  bool connected() const { return conn_ != nullptr; }
  void Disconnect();

  // Runs a prepared statement with `params` bound as strings (nullopt = NULL).
  // For queries `rows` receives each row as values in select order.
  Status Query(const std::string& sql, const std::vector<Value>& params, std::vector<std::vector<Value>>* rows);
  // Runs a prepared statement that changes data; `affected` may be null.
  Status Exec(const std::string& sql, const std::vector<Value>& params, uint64_t* affected = nullptr);

  Status Begin();
  Status Commit();
  void Rollback();  // best effort

  // Connection-level failures seen since start (for tests and metrics).
  uint64_t failures() const { return failures_; }

 private:
  sql::PreparedStatement* Prepare(const std::string& sql);
  Status Run(const char* what, const std::function<void()>& fn);

  DbConfig db_;
  std::unique_ptr<sql::Connection> conn_;
  std::map<std::string, std::unique_ptr<sql::PreparedStatement>> stmts_;
  uint64_t failures_ = 0;
};

// Connector/C++ needs these around the life of every thread that uses it
// (besides the one that first touched the driver).
// Connects to `db` without auto-reconnect (a silent reconnect would lose an
// open transaction unnoticed; callers reconnect themselves). io_timeout_s
// bounds each read and write, so a hung server fails the call instead of
// holding the thread. Throws sql::SQLException.
std::unique_ptr<sql::Connection> MysqlConnect(const DbConfig& db, int connect_timeout_s, int io_timeout_s);

// Whether a Connector/C++ error code means the connection is unusable:
// client-side codes (CR_*, >= 2000), 0 (no server answer) and 1927 (killed).
// Server-side ones (duplicate key, syntax, ...) leave it healthy.
inline bool IsConnectionError(int code) { return code >= 2000 || code == 0 || code == 1927; }

void MysqlDriverInit();  // once, on the main thread, before any worker starts
void MysqlThreadInit();
void MysqlThreadEnd();

// Backtick-quotes an identifier already checked against the schema.
std::string QuoteIdent(const std::string& name);

}  // namespace lampyr::data
