// SQL text for one declared table. Only names from the loaded schema are
// spliced in (backtick-quoted); every value travels as a bound parameter.
#pragma once

#include <string>
#include <vector>

#include "data/record_codec.h"
#include "data/schema.h"

namespace lampyr::data::sqltext {

std::string SelectByPk(const TableSchema& t, bool for_update = false);
std::string SelectManyByPk(const TableSchema& t, size_t n);
std::string SelectPksByFk(const TableSchema& t);
std::string Insert(const TableSchema& t, const std::vector<std::string>& columns);
// Multi-row INSERT ... ON DUPLICATE KEY UPDATE of every column in `columns`.
std::string Upsert(const TableSchema& t, const std::vector<std::string>& columns, size_t rows);
std::string DeleteMany(const TableSchema& t, size_t n);

// A result row of SelectByPk/SelectManyByPk (schema order) as a Row.
Row ToRow(const TableSchema& t, std::vector<Value>&& values);

}  // namespace lampyr::data::sqltext
