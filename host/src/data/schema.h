// Schema: the declared tables (config `tables`) with their columns and types
// as information_schema reports them at start. Every table and column name
// a caller passes is checked here first, so an unknown name is a clear error
// and never reaches SQL text.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "data/record_codec.h"

namespace lampyr::data {

class MysqlSession;

struct ColumnInfo {
  std::string name;
  std::string type;  // information_schema DATA_TYPE: int, bigint, varchar, longblob, ...
  bool auto_increment = false;
  bool nullable = true;
  bool is_unsigned = false;
  bool has_default = false;
  // CHARACTER_MAXIMUM_LENGTH: characters for text types, bytes for binary
  // ones; 0 = not a string type.
  uint64_t max_length = 0;
};

struct TableSchema {
  std::string name;
  std::string pk;
  std::string fk;  // empty = none
  bool autoinc = false;
  std::vector<ColumnInfo> columns;  // in table order
  std::map<std::string, size_t> index;  // column name -> position

  bool Has(const std::string& column) const { return index.count(column) != 0; }
  // "`a`,`b`,`c`"
  std::string SelectList() const;
};

class Schema {
 public:
  // Reads every declared table's columns from information_schema of `db`.
  // Fails naming each table that is missing, lacks its pk/fk column, or is
  // declared autoinc without an AUTO_INCREMENT pk.
  Status Load(MysqlSession* session, const std::string& db, const std::map<std::string, TableConfig>& tables);

  // Null with a clear Status for a table that is not declared.
  const TableSchema* Find(const std::string& table, Status* status) const;
  // Every column of `row` must exist in `t`, and every value must be one
  // MySQL will store as given (integers in range, text valid UTF-8 within
  // its length, no NULL in a NOT NULL column): a write the cache accepted
  // must never be refused later by the flush.
  static Status CheckColumns(const TableSchema& t, const Row& row);
  static Status CheckValue(const TableSchema& t, const ColumnInfo& c, const Value& v);

  const std::map<std::string, TableSchema>& tables() const { return tables_; }

 private:
  std::map<std::string, TableSchema> tables_;
};

}  // namespace lampyr::data
