// test_sql: named "test_sql"; plain SQL ("sql_*") for the SQL tests
// (test/integration/plugin_sql_test.cpp). Statements travel in the request
// body as lines "<sql>\t<param>\t<param>..." (a param "\N" is NULL, "\t"
// and "\n" inside params are not supported: the tests do not need them).
// Replies: a result "cols=<a,b> rows=[v|v][v|NULL] affected=<n>", or
// "err <status> <message>" (status: error, timeout, unavailable).
//   51 one statement                           -> its result
//   52 statements as one transaction           -> "ok <result>;<result>..." | err
//   53 begin, run the statements, keep it open -> "open <tx>" | err
//   54 body = tx: commit it                    -> "committed" | err
//   55 body = tx: roll it back                 -> "rolled back" | err
//   56 ping                                    -> "pong" (the loop answers)
#include <lampyr/plugin.hpp>

#include <sstream>

namespace {

using lampyr::sdk::DataStatus;
using lampyr::sdk::Request;
using lampyr::sdk::SqlResult;
using lampyr::sdk::SqlStatement;

std::vector<SqlStatement> Parse(const std::string& body) {
  std::vector<SqlStatement> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    SqlStatement st;
    size_t tab = line.find('\t');
    st.sql = line.substr(0, tab);
    while (tab != std::string::npos) {
      size_t next = line.find('\t', tab + 1);
      std::string p = line.substr(tab + 1, next == std::string::npos ? std::string::npos : next - tab - 1);
      if (p == "\\N") st.params.push_back(std::nullopt);
      else st.params.push_back(p);
      tab = next;
    }
    out.push_back(std::move(st));
  }
  return out;
}

std::string Show(const SqlResult& r) {
  std::string out = "cols=";
  for (size_t i = 0; i < r.columns.size(); ++i) out += (i ? "," : "") + r.columns[i];
  out += " rows=";
  for (const auto& row : r.rows) {
    out += "[";
    for (size_t i = 0; i < row.size(); ++i) out += (i ? "|" : "") + row[i].value_or("NULL");
    out += "]";
  }
  return out + " affected=" + std::to_string(r.affected);
}

std::string Err(const DataStatus& st) {
  const char* name = st.code == LAMPYR_DONE_TIMEOUT ? "timeout" : st.code == LAMPYR_DONE_UNAVAILABLE ? "unavailable" : "error";
  return std::string("err ") + name + " " + st.message;
}

class Sql : public lampyr::sdk::Plugin {
  void init() override {
    on(51, [this](Request& r) {
      auto sts = Parse(r.body());
      if (sts.size() != 1) return void(r.reply("err bad request"));
      Request kept = r;
      if (!sql_query(sts[0].sql, sts[0].params, [kept](DataStatus st, SqlResult res) {
            kept.reply(st.ok() ? Show(res) : Err(st));
          }))
        r.reply("err refused");
    });
    on(52, [this](Request& r) {
      Request kept = r;
      if (!sql_transaction(Parse(r.body()), [kept](DataStatus st, std::vector<SqlResult> rs) {
            if (!st.ok()) return void(kept.reply(Err(st)));
            std::string out = "ok ";
            for (size_t i = 0; i < rs.size(); ++i) out += (i ? ";" : "") + Show(rs[i]);
            kept.reply(out);
          }))
        r.reply("err refused");
    });
    on(53, [this](Request& r) {
      Request kept = r;
      auto sts = std::make_shared<std::vector<SqlStatement>>(Parse(r.body()));
      if (!sql_begin([this, kept, sts](DataStatus st, lampyr::sdk::SqlTx tx) {
            if (!st.ok()) return void(kept.reply(Err(st)));
            RunOpen(kept, tx, sts, 0);
          }))
        r.reply("err refused");
    });
    on(54, [this](Request& r) {
      Request kept = r;
      if (!sql_commit(std::strtoull(r.body().c_str(), nullptr, 10),
                      [kept](DataStatus st) { kept.reply(st.ok() ? "committed" : Err(st)); }))
        r.reply("err refused");
    });
    on(55, [this](Request& r) {
      Request kept = r;
      if (!sql_rollback(std::strtoull(r.body().c_str(), nullptr, 10),
                        [kept](DataStatus st) { kept.reply(st.ok() ? "rolled back" : Err(st)); }))
        r.reply("err refused");
    });
    on(56, [](Request& r) { r.reply("pong"); });
  }

  void RunOpen(const Request& r, lampyr::sdk::SqlTx tx, std::shared_ptr<std::vector<SqlStatement>> sts, size_t i) {
    if (i == sts->size()) return void(r.reply("open " + std::to_string(tx)));
    const auto& s = (*sts)[i];
    if (!sql_tx_query(tx, s.sql, s.params, [this, r, tx, sts, i](DataStatus st, SqlResult) {
          if (!st.ok()) return void(r.reply(Err(st)));
          RunOpen(r, tx, sts, i + 1);
        }))
      r.reply("err refused");
  }
};

}  // namespace

LAMPYR_PLUGIN(Sql, "test_sql", "1.0", 1)
