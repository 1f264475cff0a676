#include "master/cluster_metrics.h"

#include <map>
#include <string_view>

namespace lampyr {

namespace {

struct Family {
  std::string help, type;  // whole lines, "" until seen
  std::string samples;     // lines, each ending in '\n'
};

class Merger {
 public:
  void Add(std::string_view text, const std::string& server) {
    std::string current;  // family named by the last TYPE/HELP line
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      if (line.empty()) continue;
      if (line[0] == '#') {
        // "# HELP name text" / "# TYPE name type"; other comments are dropped.
        const bool help = line.starts_with("# HELP "), type = line.starts_with("# TYPE ");
        if (!help && !type) continue;
        std::string_view rest = line.substr(7);
        current = std::string(rest.substr(0, rest.find(' ')));
        std::string& slot = help ? Get(current).help : Get(current).type;
        if (slot.empty()) slot = std::string(line) + "\n";
        continue;
      }
      const size_t name_end = line.find_first_of("{ ");
      if (name_end == std::string_view::npos) continue;  // not a sample
      const std::string_view name = line.substr(0, name_end);
      // Histogram/summary samples (_bucket, _sum, _count) belong to the
      // family declared above them.
      const std::string family = !current.empty() && name.starts_with(current) ? current : std::string(name);
      std::string& out = Get(family).samples;
      if (server.empty()) {
        out.append(line);
      } else {
        const std::string label = "server=\"" + server + "\"";
        out.append(name);
        if (line[name_end] == '{') {
          const bool empty_set = line.size() > name_end + 1 && line[name_end + 1] == '}';
          out += "{" + label + (empty_set ? "" : ",");
          out.append(line.substr(name_end + 1));
        } else {
          out += "{" + label + "}";
          out.append(line.substr(name_end));
        }
      }
      out += '\n';
    }
  }

  std::string Render() const {
    std::string out;
    for (const auto& name : order_) {
      const Family& f = families_.at(name);
      if (f.samples.empty()) continue;
      out += f.help + f.type + f.samples;
    }
    return out;
  }

 private:
  Family& Get(const std::string& name) {
    auto [it, inserted] = families_.try_emplace(name);
    if (inserted) order_.push_back(name);
    return it->second;
  }

  std::map<std::string, Family> families_;
  std::vector<std::string> order_;  // first-seen order
};

}  // namespace

std::string MergePrometheus(const std::string& own, const std::vector<std::pair<std::string, std::string>>& servers) {
  Merger m;
  m.Add(own, "");
  for (const auto& [name, text] : servers) m.Add(text, name);
  return m.Render();
}

}  // namespace lampyr
