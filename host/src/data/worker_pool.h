// WorkerPool: a few threads that run blocking MySQL/memcached work. Each
// thread owns a context made on that thread by `make_ctx` (its own MySQL
// connection and memcached handle), so no connection is ever shared. Results
// go back to the event loop by the caller's EventLoop::Post.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status.h"

namespace lampyr::data {

template <typename Ctx>
class WorkerPool : NonCopyable {
 public:
  using Task = std::function<void(Ctx&)>;

  ~WorkerPool() { Stop(); }

  // `make_ctx(i)` runs on worker i's thread before its first task;
  // `end_ctx` after its last one.
  void Start(size_t threads, std::function<std::unique_ptr<Ctx>(size_t)> make_ctx,
             std::function<void()> end_ctx = nullptr) {
    for (size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this, i, make_ctx, end_ctx] {
        {
          std::unique_ptr<Ctx> ctx = make_ctx(i);
          Loop(*ctx);
        }
        if (end_ctx) end_ctx();
      });
    }
  }

  // Thread-safe. Tasks submitted after Stop() began are dropped.
  bool Submit(Task t) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return false;
      tasks_.push_back(std::move(t));
    }
    cv_.notify_one();
    return true;
  }

  // Runs every task already queued, then joins the threads.
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  size_t queued() const {
    std::lock_guard<std::mutex> lk(mu_);
    return tasks_.size();
  }

 private:
  void Loop(Ctx& ctx) {
    while (true) {
      Task t;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping and drained
        t = std::move(tasks_.front());
        tasks_.pop_front();
      }
      t(ctx);
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace lampyr::data
