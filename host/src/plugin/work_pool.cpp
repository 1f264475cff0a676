#include "plugin/work_pool.h"

#include <exception>

#include "core/log.h"

namespace lampyr::plugin {

WorkPool::WorkPool(EventLoop* loop, size_t threads, size_t queue_limit) : loop_(loop), queue_limit_(queue_limit) {
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkPool::~WorkPool() { Stop(); }

bool WorkPool::Submit(const void* owner, std::function<void()> run, std::function<void(bool)> done) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ || jobs_.size() >= queue_limit_) return false;
    Owner& o = owners_[owner];
    if (o.cancelled) return false;
    jobs_.push_back(Job{owner, std::move(run), std::move(done)});
  }
  cv_.notify_one();
  return true;
}

size_t WorkPool::Cancel(const void* owner) {
  std::vector<std::function<void(bool)>> dropped;
  size_t running = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = owners_.find(owner);
    if (it == owners_.end()) return 0;
    it->second.cancelled = true;
    running = it->second.running;
    // Out of the queue now, so no worker ever pops a job whose owner may be
    // forgotten (and its address reused) meanwhile.
    for (auto j = jobs_.begin(); j != jobs_.end();) {
      if (j->owner == owner) {
        dropped.push_back(std::move(j->done));
        j = jobs_.erase(j);
      } else {
        ++j;
      }
    }
  }
  for (auto& done : dropped) loop_->Post([done = std::move(done)] { done(false); });
  return running;
}

size_t WorkPool::Running(const void* owner) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = owners_.find(owner);
  return it == owners_.end() ? 0 : it->second.running;
}

void WorkPool::Forget(const void* owner) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = owners_.find(owner);
  if (it != owners_.end() && it->second.cancelled && it->second.running == 0) owners_.erase(it);
}

size_t WorkPool::queued() const {
  std::lock_guard<std::mutex> lk(mu_);
  return jobs_.size();
}

void WorkPool::Stop() {
  std::deque<Job> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    dropped.swap(jobs_);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  for (Job& j : dropped) {
    auto done = std::move(j.done);
    loop_->Post([done] { done(false); });
  }
}

void WorkPool::Loop() {
  while (true) {
    Job job;
    bool run = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping
      job = std::move(jobs_.front());
      jobs_.pop_front();
      // Counted under the same lock Cancel() takes: once Cancel() has
      // returned 0, no job of that owner can start any more.
      Owner& o = owners_[job.owner];
      run = !o.cancelled;
      if (run) ++o.running;
    }
    if (run) {
      try {
        job.run();  // host code that calls the plugin's function; it catches itself
      } catch (const std::exception& e) {
        LOG_ERROR("work", "a job failed: %s", e.what());
      } catch (...) {
        LOG_ERROR("work", "a job failed");
      }
      // The job's closure goes back to the loop with its completion, so
      // whatever it captured is destroyed on the loop thread.
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (run) --owners_[job.owner].running;
    }
    auto done = std::move(job.done);
    auto fn = std::move(job.run);
    loop_->Post([done = std::move(done), fn = std::move(fn), run]() mutable {
      fn = nullptr;
      done(run);
    });
  }
}

}  // namespace lampyr::plugin
