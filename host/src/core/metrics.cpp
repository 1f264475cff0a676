#include "core/metrics.h"

namespace lampyr {

Counter* MetricsRegistry::GetCounter(const std::string& name, const std::string& help, const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = families_[name];
  if (f.help.empty()) f.help = help;
  f.is_counter = true;
  auto& slot = f.counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* MetricsRegistry::GetGauge(const std::string& name, const std::string& help, const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = families_[name];
  if (f.help.empty()) f.help = help;
  f.is_counter = false;
  auto& slot = f.gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

void MetricsRegistry::Remove(const std::string& name, const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return;
  // Handles may still be held by code that has not yet noticed the removal,
  // so they are parked (not freed under it) until the registry goes away.
  auto c = it->second.counters.find(labels);
  if (c != it->second.counters.end()) {
    retired_counters_.push_back(std::move(c->second));
    it->second.counters.erase(c);
  }
  auto g = it->second.gauges.find(labels);
  if (g != it->second.gauges.end()) {
    retired_gauges_.push_back(std::move(g->second));
    it->second.gauges.erase(g);
  }
}

namespace {
// The exposition format needs `\` and line feeds in HELP escaped; help text
// may come from plugins, and one raw newline would break the whole scrape.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}
}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out.reserve(families_.size() * 128);
  for (const auto& [name, f] : families_) {
    if (f.counters.empty() && f.gauges.empty()) continue;
    out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + name + (f.is_counter ? " counter\n" : " gauge\n");
    // Captured by an init-capture: clang 14 cannot capture structured bindings.
    auto series = [&out, &family = name](const std::string& labels, const std::string& value) {
      out += family;
      if (!labels.empty()) out += "{" + labels + "}";
      out += " " + value + "\n";
    };
    for (const auto& [labels, c] : f.counters) series(labels, std::to_string(c->value()));
    for (const auto& [labels, g] : f.gauges) series(labels, std::to_string(g->value()));
  }
  return out;
}

int64_t MetricsRegistry::Value(const std::string& name, const std::string& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto c = it->second.counters.find(labels);
  if (c != it->second.counters.end()) return static_cast<int64_t>(c->second->value());
  auto g = it->second.gauges.find(labels);
  if (g != it->second.gauges.end()) return g->second->value();
  return 0;
}

MetricsRegistry& Metrics() {
  static MetricsRegistry* r = new MetricsRegistry();  // never destroyed: used until exit
  return *r;
}

}  // namespace lampyr
