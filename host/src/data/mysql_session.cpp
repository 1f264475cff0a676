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
    sql::ConnectOptionsMap opts;
    opts["hostName"] = sql::SQLString("tcp://" + db_.host + ":" + std::to_string(db_.port));
    opts["userName"] = sql::SQLString(db_.user);
    opts["password"] = sql::SQLString(db_.passwd);
    opts["schema"] = sql::SQLString(db_.db);
    opts["OPT_CHARSET_NAME"] = sql::SQLString(db_.charset);
    opts["OPT_CONNECT_TIMEOUT"] = 2;
    // A flush of a large batch must not look like a dead server.
    opts["OPT_READ_TIMEOUT"] = 30;
    opts["OPT_WRITE_TIMEOUT"] = 30;
    opts["OPT_RECONNECT"] = false;  // we reconnect ourselves and drop stale statements
    conn_.reset(sql::mysql::get_mysql_driver_instance()->connect(opts));
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
    int code = e.getErrorCode();
    // Client-side codes (CR_*) mean the connection is unusable; server-side
    // ones (duplicate key, syntax, ...) leave it healthy.
    if (code >= 2000 || code == 0 || code == 1927 /* connection killed */) {
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

Status MysqlSession::Begin() {
  return Run("begin", [&] { conn_->setAutoCommit(false); });
}

Status MysqlSession::Commit() {
  return Run("commit", [&] {
    conn_->commit();
    conn_->setAutoCommit(true);
  });
}

void MysqlSession::Rollback() {
  if (!conn_) return;
  try {
    conn_->rollback();
    conn_->setAutoCommit(true);
  } catch (...) {
    Disconnect();
  }
}

void MysqlDriverInit() { sql::mysql::get_mysql_driver_instance(); }
void MysqlThreadInit() { sql::mysql::get_mysql_driver_instance()->threadInit(); }
void MysqlThreadEnd() { sql::mysql::get_mysql_driver_instance()->threadEnd(); }

std::string QuoteIdent(const std::string& name) { return "`" + name + "`"; }

}  // namespace lampyr::data
