#include "data/schema.h"

#include "data/mysql_session.h"

namespace lampyr::data {
namespace {

bool PlainIdentifier(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$'))
      return false;
  }
  return true;
}

}  // namespace

std::string TableSchema::SelectList() const {
  std::string s;
  for (const auto& c : columns) {
    if (!s.empty()) s += ",";
    s += QuoteIdent(c.name);
  }
  return s;
}

Status Schema::Load(MysqlSession* session, const std::string& db, const std::map<std::string, TableConfig>& tables) {
  std::string errors;
  auto fail = [&](const std::string& e) { errors += (errors.empty() ? "" : "; ") + e; };
  std::map<std::string, TableSchema> out;
  for (const auto& [name, cfg] : tables) {
    const std::string path = "tables." + name;
    // Cache keys and SQL text are built from these names: only plain
    // identifiers are accepted, so neither needs escaping.
    if (!PlainIdentifier(name)) {
      fail(path + ": table name must be letters, digits, _ or $");
      continue;
    }
    std::vector<std::vector<Value>> rows;
    Status s = session->Query(
        "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        {db, name}, &rows);
    if (!s.ok()) return s;
    if (rows.empty()) {
      fail(path + ": no such table in database " + db);
      continue;
    }
    TableSchema t;
    t.name = name;
    t.pk = cfg.pk;
    t.fk = cfg.fk;
    t.autoinc = cfg.autoinc;
    for (auto& r : rows) {
      ColumnInfo c;
      c.name = r[0].value_or("");
      c.type = r[1].value_or("");
      c.auto_increment = r[2].value_or("").find("auto_increment") != std::string::npos;
      if (!PlainIdentifier(c.name)) {
        fail(path + ": column \"" + c.name + "\" is not a plain identifier");
        continue;
      }
      t.index[c.name] = t.columns.size();
      t.columns.push_back(std::move(c));
    }
    if (!t.Has(t.pk)) {
      fail(path + ".pk: table " + name + " has no column \"" + t.pk + "\"");
      continue;
    }
    if (!t.fk.empty() && !t.Has(t.fk)) {
      fail(path + ".fk: table " + name + " has no column \"" + t.fk + "\"");
      continue;
    }
    if (t.autoinc && !t.columns[t.index[t.pk]].auto_increment) {
      fail(path + ".autoinc: column " + name + "." + t.pk + " is not AUTO_INCREMENT");
      continue;
    }
    out[name] = std::move(t);
  }
  if (!errors.empty()) return Status::Error("data schema: " + errors);
  tables_ = std::move(out);
  return Status::OK();
}

const TableSchema* Schema::Find(const std::string& table, Status* status) const {
  auto it = tables_.find(table);
  if (it == tables_.end()) {
    *status = Status::Error("data: unknown table \"" + table + "\" (not declared in config tables)");
    return nullptr;
  }
  *status = Status::OK();
  return &it->second;
}

Status Schema::CheckColumns(const TableSchema& t, const Row& row) {
  for (const auto& [name, v] : row) {
    if (!t.Has(name)) return Status::Error("data: unknown column \"" + name + "\" in table " + t.name);
  }
  return Status::OK();
}

}  // namespace lampyr::data
