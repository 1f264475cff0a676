#include "data/mysql_session.h"

#include <cppconn/connection.h>
#include <cppconn/driver.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/resultset_metadata.h>
#include <cppconn/statement.h>
#include <mysql_driver.h>

#include "core/log.h"

namespace lampyr::data {

MysqlSession::MysqlSession(const DbConfig& db) : db_(db) {}

MysqlSession::~MysqlSession() { Disconnect(); }

void MysqlSession::Disconnect() {
  stmts_.clear();
  if (conn_) {
    try {
      conn_->close();
    } catch (...) {
    }
    conn_.reset();
  }
}

Status MysqlSession::Ensure() {
  if (conn_) return Status::OK();
  try {
    // A flush of a large batch must not look like a dead server: 30 s per read/write.
    conn_ = MysqlConnect(db_, 2, 30);
    conn_->setAutoCommit(true);
    return Status::OK();
  } catch (const sql::SQLException& e) {
    ++failures_;
    conn_.reset();
    return Status::Error("mysql connect to " + db_.host + ":" + std::to_string(db_.port) + " failed: " + e.what() +
                         " (error " + std::to_string(e.getErrorCode()) + ")");
  }
}

sql::PreparedStatement* MysqlSession::Prepare(const std::string& text) {
  auto it = stmts_.find(text);
  if (it != stmts_.end()) return it->second.get();
  // Bound the cache: multi-row statements come in many shapes.
  if (stmts_.size() > 256) stmts_.clear();
  auto* st = conn_->prepareStatement(text);
  stmts_[text].reset(st);
  return st;
}

Status MysqlSession::Run(const char* what, const std::function<void()>& fn) {
  if (Status s = Ensure(); !s.ok()) return s;
  try {
    fn();
    return Status::OK();
  } catch (const sql::SQLException& e) {
    const int code = e.getErrorCode();
    if (IsConnectionError(code)) {
      ++failures_;
      Disconnect();
    }
    return Status::Error(std::string("mysql ") + what + ": " + e.what() + " (error " + std::to_string(code) +
                         ", state " + e.getSQLState() + ")");
  } catch (const std::exception& e) {
    ++failures_;
    Disconnect();
    return Status::Error(std::string("mysql ") + what + ": " + e.what());
  }
}

namespace {
void Bind(sql::PreparedStatement* st, const std::vector<Value>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    const unsigned idx = static_cast<unsigned>(i + 1);
    if (params[i]) st->setString(idx, sql::SQLString(params[i]->data(), params[i]->size()));
    else st->setNull(idx, 0 /* sql::DataType::SQLNULL */);
  }
}
}  // namespace

Status MysqlSession::Query(const std::string& text, const std::vector<Value>& params,
                           std::vector<std::vector<Value>>* rows) {
  return Run("query", [&] {
    auto* st = Prepare(text);
    Bind(st, params);
    std::unique_ptr<sql::ResultSet> rs(st->executeQuery());
    const unsigned ncols = rs->getMetaData()->getColumnCount();
    rows->clear();
    while (rs->next()) {
      std::vector<Value> row(ncols);
      for (unsigned c = 1; c <= ncols; ++c) {
        if (rs->isNull(c)) continue;
        row[c - 1] = rs->getString(c).asStdString();
      }
      rows->push_back(std::move(row));
    }
  });
}

Status MysqlSession::Exec(const std::string& text, const std::vector<Value>& params, uint64_t* affected) {
  return Run("exec", [&] {
    auto* st = Prepare(text);
    Bind(st, params);
    const int n = st->executeUpdate();
    if (affected) *affected = static_cast<uint64_t>(n);
  });
}

// Transactions are plain statements: Connector/C++ 1.1's commit() and
// rollback() drop the server's answer, so a COMMIT that failed (connection
// killed mid-flush) looked like success and the flusher marked unwritten
// rows clean. A statement's error is thrown like any other.
namespace {
void Plain(sql::Connection* conn, const char* text) {
  std::unique_ptr<sql::Statement> st(conn->createStatement());
  st->execute(text);
}
}  // namespace

Status MysqlSession::Begin() {
  return Run("begin", [&] { Plain(conn_.get(), "START TRANSACTION"); });
}

Status MysqlSession::Commit() {
  return Run("commit", [&] { Plain(conn_.get(), "COMMIT"); });
}

void MysqlSession::Rollback() {
  if (!conn_) return;
  try {
    Plain(conn_.get(), "ROLLBACK");
  } catch (...) {
    Disconnect();
  }
}

std::unique_ptr<sql::Connection> MysqlConnect(const DbConfig& db, int connect_timeout_s, int io_timeout_s) {
  sql::ConnectOptionsMap opts;
  opts["hostName"] = sql::SQLString("tcp://" + db.host + ":" + std::to_string(db.port));
  opts["userName"] = sql::SQLString(db.user);
  opts["password"] = sql::SQLString(db.passwd);
  opts["schema"] = sql::SQLString(db.db);
  opts["OPT_CHARSET_NAME"] = sql::SQLString(db.charset);
  opts["OPT_CONNECT_TIMEOUT"] = connect_timeout_s;
  opts["OPT_READ_TIMEOUT"] = io_timeout_s;
  opts["OPT_WRITE_TIMEOUT"] = io_timeout_s;
  opts["OPT_RECONNECT"] = false;
  return std::unique_ptr<sql::Connection>(sql::mysql::get_mysql_driver_instance()->connect(opts));
}

void MysqlDriverInit() { sql::mysql::get_mysql_driver_instance(); }
void MysqlThreadInit() { sql::mysql::get_mysql_driver_instance()->threadInit(); }
void MysqlThreadEnd() { sql::mysql::get_mysql_driver_instance()->threadEnd(); }

std::string QuoteIdent(const std::string& name) { return "`" + name + "`"; }

}  // namespace lampyr::data
