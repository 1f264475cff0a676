#include "data/table_sql.h"

#include "data/mysql_session.h"

namespace lampyr::data::sqltext {
namespace {
std::string Placeholders(size_t n) {
  std::string s = "(";
  for (size_t i = 0; i < n; ++i) s += i ? ",?" : "?";
  return s + ")";
}
}  // namespace

std::string SelectByPk(const TableSchema& t, bool for_update) {
  return "SELECT " + t.SelectList() + " FROM " + QuoteIdent(t.name) + " WHERE " + QuoteIdent(t.pk) + " = ?" +
         (for_update ? " FOR UPDATE" : "");
}

std::string SelectManyByPk(const TableSchema& t, size_t n) {
  return "SELECT " + t.SelectList() + " FROM " + QuoteIdent(t.name) + " WHERE " + QuoteIdent(t.pk) + " IN " +
         Placeholders(n);
}

std::string SelectPksByFk(const TableSchema& t) {
  return "SELECT " + QuoteIdent(t.pk) + " FROM " + QuoteIdent(t.name) + " WHERE " + QuoteIdent(t.fk) + " = ? ORDER BY " +
         QuoteIdent(t.pk);
}

std::string Insert(const TableSchema& t, const std::vector<std::string>& columns) {
  std::string cols;
  for (const auto& c : columns) cols += (cols.empty() ? "" : ",") + QuoteIdent(c);
  return "INSERT INTO " + QuoteIdent(t.name) + " (" + cols + ") VALUES " + Placeholders(columns.size());
}

std::string Upsert(const TableSchema& t, const std::vector<std::string>& columns, size_t rows) {
  std::string cols, update;
  for (const auto& c : columns) {
    cols += (cols.empty() ? "" : ",") + QuoteIdent(c);
    if (c != t.pk) update += (update.empty() ? "" : ",") + QuoteIdent(c) + "=VALUES(" + QuoteIdent(c) + ")";
  }
  if (update.empty()) update = QuoteIdent(t.pk) + "=" + QuoteIdent(t.pk);
  std::string s = "INSERT INTO " + QuoteIdent(t.name) + " (" + cols + ") VALUES ";
  const std::string one = Placeholders(columns.size());
  for (size_t i = 0; i < rows; ++i) s += (i ? "," : "") + one;
  return s + " ON DUPLICATE KEY UPDATE " + update;
}

std::string DeleteMany(const TableSchema& t, size_t n) {
  return "DELETE FROM " + QuoteIdent(t.name) + " WHERE " + QuoteIdent(t.pk) + " IN " + Placeholders(n);
}

Row ToRow(const TableSchema& t, std::vector<Value>&& values) {
  Row row;
  for (size_t i = 0; i < t.columns.size() && i < values.size(); ++i) row[t.columns[i].name] = std::move(values[i]);
  return row;
}

}  // namespace lampyr::data::sqltext
