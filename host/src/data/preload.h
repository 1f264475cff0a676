// Preload: every row of a declared table into the record cache (Firefly's
// MAdmin.load), through DataEngine's public calls only: one query for the
// keys, then multi-gets of 500 keys, whose misses the engine loads from
// MySQL and caches. At start (tables.<name>.preload) or on demand
// ("data_preload"). The loop never waits; `done` runs on it with the rows
// loaded.
#pragma once

#include <cstddef>
#include <functional>

#include "core/config.h"
#include "core/status.h"

namespace lampyr::data {

class DataEngine;

void Preload(DataEngine* engine, const TableConfig& table, std::function<void(Status, size_t rows)> done);

}  // namespace lampyr::data
