// Metrics registry: stable handles and the Prometheus text exposition that
// GET /metrics serves (format 0.0.4: HELP, TYPE, one line per series).
#include "core/metrics.h"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>
#include <vector>

namespace lampyr {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(Metrics, EmptyRegistryRendersNothing) {
  MetricsRegistry r;
  EXPECT_EQ(r.RenderPrometheus(), "");
}

TEST(Metrics, PrometheusTextFormat) {
  MetricsRegistry r;
  r.GetCounter("lampyr_frames_rejected_total", "Frames rejected by reason", "reason=\"bad_head\"")->Inc(3);
  r.GetCounter("lampyr_frames_rejected_total", "Frames rejected by reason", "reason=\"too_large\"")->Inc();
  r.GetGauge("lampyr_sessions", "Open client sessions")->Set(-2);
  r.GetCounter("lampyr_accepts_total", "Accepted connections")->Inc(0);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP lampyr_accepts_total Accepted connections\n"
            "# TYPE lampyr_accepts_total counter\n"
            "lampyr_accepts_total 0\n"
            "# HELP lampyr_frames_rejected_total Frames rejected by reason\n"
            "# TYPE lampyr_frames_rejected_total counter\n"
            "lampyr_frames_rejected_total{reason=\"bad_head\"} 3\n"
            "lampyr_frames_rejected_total{reason=\"too_large\"} 1\n"
            "# HELP lampyr_sessions Open client sessions\n"
            "# TYPE lampyr_sessions gauge\n"
            "lampyr_sessions -2\n");
}

TEST(Metrics, EveryLineIsWellFormed) {
  MetricsRegistry r;
  r.GetCounter("lampyr_a_total", "A", "x=\"1\",y=\"2\"")->Inc(7);
  r.GetGauge("lampyr_b", "B")->Add(5);
  for (const std::string& line : Lines(r.RenderPrometheus())) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    // name[{labels}] value
    auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    std::string value = line.substr(space + 1);
    EXPECT_FALSE(value.empty()) << line;
    EXPECT_EQ(value.find_first_not_of("-0123456789"), std::string::npos) << line;
    std::string series = line.substr(0, space);
    EXPECT_EQ(series.find(' '), std::string::npos) << line;
  }
}

// HELP text is free text (plugins supply it): a line feed in it must not
// break the exposition, so it is escaped as the format requires (\\ and \n).
TEST(Metrics, HelpTextIsEscaped) {
  MetricsRegistry r;
  r.GetCounter("lampyr_weird_total", "line one\nline two \\ end")->Inc();
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP lampyr_weird_total line one\\nline two \\\\ end\n"
            "# TYPE lampyr_weird_total counter\n"
            "lampyr_weird_total 1\n");
}

TEST(Metrics, SameNameAndLabelsReturnTheSameHandle) {
  MetricsRegistry r;
  Counter* a = r.GetCounter("lampyr_x_total", "X", "k=\"1\"");
  Counter* b = r.GetCounter("lampyr_x_total", "other help is ignored", "k=\"1\"");
  Counter* c = r.GetCounter("lampyr_x_total", "X", "k=\"2\"");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Handles stay valid while many more series are added.
  for (int i = 0; i < 1000; ++i) r.GetCounter("lampyr_y" + std::to_string(i), "Y");
  a->Inc(2);
  EXPECT_EQ(r.Value("lampyr_x_total", "k=\"1\""), 2);
  EXPECT_NE(r.RenderPrometheus().find("# HELP lampyr_x_total X\n"), std::string::npos);
}

TEST(Metrics, ValueOfUnknownSeriesIsZero) {
  MetricsRegistry r;
  EXPECT_EQ(r.Value("lampyr_nothing"), 0);
  r.GetGauge("lampyr_g", "G")->Set(9);
  EXPECT_EQ(r.Value("lampyr_g"), 9);
  EXPECT_EQ(r.Value("lampyr_g", "a=\"b\""), 0);
}

TEST(Metrics, RemoveDropsTheSeriesAndAnEmptyFamily) {
  MetricsRegistry r;
  Counter* keep = r.GetCounter("lampyr_plugin_calls_total", "Calls", "plugin=\"room\"");
  Counter* gone = r.GetCounter("lampyr_plugin_calls_total", "Calls", "plugin=\"chat\"");
  keep->Inc();
  gone->Inc();
  r.Remove("lampyr_plugin_calls_total", "plugin=\"chat\"");
  gone->Inc();  // a late holder of the handle must not crash (checked by ASan)
  std::string text = r.RenderPrometheus();
  EXPECT_EQ(text.find("chat"), std::string::npos) << text;
  EXPECT_NE(text.find("lampyr_plugin_calls_total{plugin=\"room\"} 1\n"), std::string::npos) << text;
  r.Remove("lampyr_plugin_calls_total", "plugin=\"room\"");
  EXPECT_EQ(r.RenderPrometheus(), "");
  r.Remove("lampyr_never_there", "");
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  MetricsRegistry r;
  constexpr int kThreads = 4, kPer = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      Counter* c = r.GetCounter("lampyr_hits_total", "Hits");
      Gauge* g = r.GetGauge("lampyr_level", "Level");
      for (int i = 0; i < kPer; ++i) {
        c->Inc();
        g->Add(1);
        g->Add(-1);
      }
    });
  }
  // Rendering concurrently with updates is safe (checked under ASan/UBSan).
  for (int i = 0; i < 50; ++i) (void)r.RenderPrometheus();
  for (auto& th : threads) th.join();
  EXPECT_EQ(r.Value("lampyr_hits_total"), int64_t{kThreads} * kPer);
  EXPECT_EQ(r.Value("lampyr_level"), 0);
}

TEST(Metrics, ProcessWideRegistryIsOneObject) {
  EXPECT_EQ(&Metrics(), &Metrics());
  Counter* c = Metrics().GetCounter("lampyr_unit_test_total", "Unit test");
  c->Inc();
  EXPECT_GE(Metrics().Value("lampyr_unit_test_total"), 1);
}

}  // namespace
}  // namespace lampyr
