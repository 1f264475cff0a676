// Merges Prometheus text from several processes into one valid exposition:
// every sample of a server gets a server="NAME" label, and each metric
// family keeps exactly one HELP and one TYPE line (the first one seen), with
// all its samples (of every process) grouped under them.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace lampyr {

// `own` is the master's text, kept without a server label; `servers` are
// (name, text) pairs.
std::string MergePrometheus(const std::string& own, const std::vector<std::pair<std::string, std::string>>& servers);

}  // namespace lampyr
