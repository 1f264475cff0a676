// Metrics registry: named counters and gauges, rendered in the Prometheus
// text format by the admin API. Handles are stable pointers, so hot paths
// keep a Counter* and pay one relaxed atomic add per event.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"

namespace lampyr {

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class MetricsRegistry : NonCopyable {
 public:
  // `name` is a Prometheus metric name (lampyr_*), `labels` the text between
  // the braces (`reason="bad_head"`) or empty. The same name+labels returns
  // the same object. Never fails; never invalidates earlier handles.
  Counter* GetCounter(const std::string& name, const std::string& help, const std::string& labels = "");
  Gauge* GetGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  // Drops every series of `name` with these labels (a retired plugin's metrics).
  void Remove(const std::string& name, const std::string& labels);

  // Prometheus text exposition format 0.0.4.
  std::string RenderPrometheus() const;
  // Value of one series, for tests and status pages; 0 when unknown.
  int64_t Value(const std::string& name, const std::string& labels = "") const;

 private:
  struct Family {
    std::string help;
    bool is_counter = true;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // by labels
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::vector<std::unique_ptr<Counter>> retired_counters_;
  std::vector<std::unique_ptr<Gauge>> retired_gauges_;
};

// The process-wide registry.
MetricsRegistry& Metrics();

}  // namespace lampyr
