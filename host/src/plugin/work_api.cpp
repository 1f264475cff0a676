// "work" (plugin.h, docs/plugins.md "Off-loop work"): plugin code on the
// host's worker pool. A job is a lease on the generation that started it
// (pending_calls), like a remote call: a draining generation stays loaded
// until its jobs have completed, and one whose drain timed out is unloaded
// only when its code has left every worker (PluginHost::Retire/WorkEnded).
//
// Only a SERVING generation may start work: init() may still be rolled back
// (the generation discarded at once, with no drain), and a draining one may
// start nothing new.
#include <cstring>
#include <memory>
#include <type_traits>

#include "plugin/host_api.h"
#include "plugin/plugin_host.h"
#include "plugin/work_pool.h"

namespace lampyr::plugin {
namespace {

using State = Generation::State;

int Work(lampyr_host* h, lampyr_work_fn fn, void* arg, uint64_t cookie) {
  return Guard([&] {
    Generation* g = Generation::From(h);
    if (!fn) return LAMPYR_ERR_ARG;
    if (g->state != State::kServing) return LAMPYR_ERR_STATE;
    std::weak_ptr<Generation> w = g->weak_from_this();
    bool queued = g->host->work()->Submit(
        g, [fn, arg] { fn(arg); },
        [w, cookie](bool ran) {
          auto gen = w.lock();
          if (!gen || gen->state == State::kRetired) return;
          if (gen->pending_calls) --gen->pending_calls;
          // Its retirement waits for its running jobs: no more plugin calls.
          if (gen->retire_after_work) return gen->host->WorkEnded(gen.get());
          if (gen->desc()->on_complete) {
            Activity running = gen->Running("work completion");
            gen->desc()->on_complete(gen->ctx, cookie, ran ? LAMPYR_DONE_OK : LAMPYR_DONE_CANCELLED, nullptr, 0);
          }
          gen->host->LeaseEnded(gen.get());
        });
    if (!queued) return LAMPYR_ERR_BUSY;
    ++g->pending_calls;
    return LAMPYR_OK;
  });
}

static_assert(std::is_same_v<decltype(&Work), lampyr_fn_work>);

}  // namespace

void* LookupWorkFunction(const char* name) {
  if (std::strcmp(name, "work") == 0) return reinterpret_cast<void*>(&Work);
  if (void* fn = LookupSqlFunction(name)) return fn;
  return LookupKvFunction(name);
}

}  // namespace lampyr::plugin
