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
        "SELECT COLUMN_NAME, DATA_TYPE, EXTRA, IS_NULLABLE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, "
        "COLUMN_DEFAULT IS NOT NULL FROM information_schema.COLUMNS "
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
      c.nullable = r[3].value_or("YES") == "YES";
      c.is_unsigned = r[4].value_or("").find("unsigned") != std::string::npos;
      try {
        c.max_length = r[5] ? std::stoull(*r[5]) : 0;
      } catch (...) {
        c.max_length = 0;
      }
      c.has_default = r[6].value_or("0") == "1";
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
    auto it = t.index.find(name);
    if (it == t.index.end()) return Status::Error("data: unknown column \"" + name + "\" in table " + t.name);
    if (Status s = CheckValue(t, t.columns[it->second], v); !s.ok()) return s;
  }
  return Status::OK();
}

namespace {

bool IsTextType(const std::string& type) {
  return type == "char" || type == "varchar" || type == "tinytext" || type == "text" || type == "mediumtext" ||
         type == "longtext" || type == "enum" || type == "set" || type == "json";
}

// Counts code points; false for malformed UTF-8 (MySQL strict mode refuses it).
bool Utf8Length(const std::string& s, uint64_t* n) {
  *n = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += len;
    ++*n;
  }
  return true;
}

bool IntegerInRange(const std::string& v, const std::string& type, bool is_unsigned) {
  size_t i = 0;
  bool neg = false;
  if (i < v.size() && (v[i] == '-' || v[i] == '+')) neg = v[i++] == '-';
  if (i == v.size() || v.size() - i > 20) return false;
  unsigned __int128 mag = 0;
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
    mag = mag * 10 + static_cast<unsigned>(v[i] - '0');
  }
  int bits = type == "tinyint" ? 8 : type == "smallint" ? 16 : type == "mediumint" ? 24 : type == "int" ? 32 : 64;
  if (is_unsigned) return (!neg || mag == 0) && mag <= ((static_cast<unsigned __int128>(1) << bits) - 1);
  const unsigned __int128 limit = static_cast<unsigned __int128>(1) << (bits - 1);
  return neg ? mag <= limit : mag < limit;
}

}  // namespace

Status Schema::CheckValue(const TableSchema& t, const ColumnInfo& c, const Value& v) {
  const std::string where = t.name + "." + c.name;
  if (!v) {
    if (!c.nullable && !c.auto_increment) return Status::Error("data: " + where + " cannot be NULL");
    return Status::OK();
  }
  const std::string& type = c.type;
  if (type == "tinyint" || type == "smallint" || type == "mediumint" || type == "int" || type == "bigint") {
    if (!IntegerInRange(*v, type, c.is_unsigned))
      return Status::Error("data: " + where + " expects an integer in " + (c.is_unsigned ? "unsigned " : "") + type +
                           " range");
  } else if (IsTextType(type)) {
    uint64_t n = 0;
    if (!Utf8Length(*v, &n)) return Status::Error("data: " + where + " expects valid UTF-8 text");
    if (c.max_length && n > c.max_length)
      return Status::Error("data: " + where + " holds at most " + std::to_string(c.max_length) + " characters");
  } else if (c.max_length && v->size() > c.max_length) {
    return Status::Error("data: " + where + " holds at most " + std::to_string(c.max_length) + " bytes");
  }
  return Status::OK();
}

}  // namespace lampyr::data
