// lampyr: the host daemon. With --server NAME it runs one server of the
// cluster; without, the master that runs them all; with --check it only
// validates the config.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/config.h"
#include "core/log.h"
#include "core/version.h"
#include "master/master.h"
#include "server/server.h"

namespace {

void Usage(FILE* out) {
  fprintf(out,
          "usage: lampyr --conf FILE [--server NAME] [--check] [--log-level debug|info|warn|error]\n"
          "       lampyr --version\n"
          "  --conf FILE     cluster config (JSON)\n"
          "  --server NAME   run this one server of the cluster (otherwise: the master)\n"
          "  --check         validate the config, print every problem, exit non-zero on errors\n");
}

// Each session is a descriptor: lift the soft limit to the hard one.
void RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // SIGHUP means "reopen your log" (logrotate; the master forwards it to
  // its servers). Until the loop handles it, ignore it rather than die of
  // its default action: a rotation during startup must not kill a server.
  signal(SIGHUP, SIG_IGN);
  std::string conf, server, level;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) {
        fprintf(stderr, "lampyr: %s needs a value\n", a.c_str());
        exit(2);
      }
      *out = argv[++i];
    };
    if (a == "--conf") value(&conf);
    else if (a == "--server") value(&server);
    else if (a == "--log-level") value(&level);
    else if (a == "--check") check = true;
    else if (a == "--version") {
      // Scripts (and the package test) read the first line: "lampyr VERSION".
      printf("lampyr %s\nplugin SDK ABI %s\n", lampyr::Version(), lampyr::SdkAbiVersion());
      return 0;
    } else if (a == "--help" || a == "-h") {
      Usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "lampyr: unknown argument %s\n", a.c_str());
      Usage(stderr);
      return 2;
    }
  }
  if (conf.empty()) {
    Usage(stderr);
    return 2;
  }
  lampyr::log::Level cli_level = lampyr::log::Level::kInfo;
  if (!level.empty() && !lampyr::log::ParseLevel(level, &cli_level)) {
    fprintf(stderr, "lampyr: --log-level: expected debug, info, warn or error, got '%s'\n", level.c_str());
    return 2;
  }

  lampyr::Config config;
  std::vector<lampyr::ConfigIssue> issues;
  lampyr::Status st = lampyr::LoadConfig(conf, &config, &issues);
  for (const auto& issue : issues) fprintf(stderr, "%s: %s\n", conf.c_str(), issue.ToString().c_str());
  if (!st.ok()) {
    fprintf(stderr, "lampyr: %s\n", st.message().c_str());
    return 1;
  }
  // Sample or short secrets stop every process that would run with them
  // (and --check), unless master.insecure_dev says this is a test setup.
  bool weak_secrets = false;
  for (const auto& issue : lampyr::CheckSecrets(config)) {
    fprintf(stderr, "%s: %s\n", conf.c_str(), issue.ToString().c_str());
    weak_secrets |= !issue.warning;
  }
  if (weak_secrets) {
    fprintf(stderr, "lampyr: invalid config: sample or short secrets (see above)\n");
    return 1;
  }
  if (!server.empty() && !config.FindServer(server)) {
    fprintf(stderr, "lampyr: %s: servers.%s: no such server\n", conf.c_str(), server.c_str());
    return 1;
  }
  if (check) {
    printf("%s: OK (%zu servers, %zu plugins)\n", conf.c_str(), config.servers.size(), config.plugins.size());
    return 0;
  }
  RaiseFileLimit();
  // Said in each process's log, where an operator looks.
  auto warn_insecure = [&] {
    if (config.master.insecure_dev)
      LOG_WARN("main", "master.insecure_dev is true: sample or short secrets are accepted; never use it outside "
                       "tests and throwaway setups");
  };

  std::string err;
  if (server.empty()) {
    // The master: supervises every server; --log-level is passed on to them.
    if (!lampyr::log::Init("master", config.master.log, cli_level, &err)) fprintf(stderr, "lampyr: %s\n", err.c_str());
    warn_insecure();
    lampyr::Master master(config, level);
    st = master.Start();
    if (!st.ok()) {
      LOG_ERROR("main", "master failed to start: %s", st.message().c_str());
      return 1;
    }
    master.Run();
    LOG_INFO("main", "master stopped");
    return 0;
  }
  const lampyr::ServerConfig* sc = config.FindServer(server);
  lampyr::log::Level lvl = lampyr::log::Level::kInfo;
  lampyr::log::ParseLevel(level.empty() ? sc->log_level : level, &lvl);
  if (!lampyr::log::Init(server, sc->log, lvl, &err)) fprintf(stderr, "lampyr: %s\n", err.c_str());

  warn_insecure();
  lampyr::Server srv(config, server);
  st = srv.Start();
  if (!st.ok()) {
    LOG_ERROR("main", "server %s failed to start: %s", server.c_str(), st.message().c_str());
    return 1;
  }
  srv.Run();
  LOG_INFO("main", "server %s stopped", server.c_str());
  return 0;
}
