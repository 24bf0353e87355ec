// paddockd: the host daemon. Serves the REST API on a unix socket (and on
// TCP with an API key), keeps every sandbox's record in the state folder's
// SQLite store, adopts running sandboxes at start-up, and reaps timeouts.
//
//   paddockd [--state-dir DIR] [--socket PATH] [--listen HOST:PORT]
//            [--api-key KEY] [--max-sandboxes N] [--warm-shells N] [--warm-images N]
//            [--warm-templates host,busybox]
//            [--no-network] [--bridge NAME] [--network-pool CIDR] [--dns IP]...
//            [--warm-slots N] [--recycled-slots N] [--nft-table NAME] [--insecure-registry HOST:PORT]...
//            [--max-sandbox-connections N] [--host-lock-wait SECONDS]
//
// The socket defaults to $PADDOCK_SOCKET, else /run/paddock/paddock.sock;
// the API key to $PADDOCK_API_KEY. SIGTERM or SIGINT stops the daemon;
// sandboxes keep running and are adopted by the next one. One paddockd runs
// per host: a second waits for the first to stop (--host-lock-wait), then
// gives up.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <tuple>

#include "api/e2b_api.h"
#include "api/http_server.h"
#include "api/port_proxy.h"
#include "api/rest_api.h"
#include "base/fs.h"
#include "base/units.h"
#include "store/store.h"

using namespace paddock;

// How long requests in progress get to end once a stop signal came.
constexpr int kShutdownGraceS = 10;

int main(int argc, char** argv) {
  CLI::App app{"paddockd: the Paddock host daemon"};
  ManagerOptions mopts;
  api::ServerOptions sopts;
  const char* env_socket = std::getenv("PADDOCK_SOCKET");
  sopts.unix_socket = env_socket && *env_socket ? env_socket : "/run/paddock/paddock.sock";
  if (const char* key = std::getenv("PADDOCK_API_KEY")) sopts.api_key = key;
  int reap_interval_ms = 1000;
  app.add_option("--state-dir", mopts.state_dir, "state folder (records, templates, sandboxes)");
  app.add_option("--socket", sopts.unix_socket, "unix socket of the API");
  app.add_option("--listen", sopts.tcp_listen, "also serve on TCP HOST:PORT (needs an API key)");
  app.add_option("--api-key", sopts.api_key, "API key required on TCP (or $PADDOCK_API_KEY)");
  app.add_option("--io-threads", sopts.io_threads, "threads reading requests and relaying proxied traffic")
      ->check(CLI::Range(1, 64));
  app.add_option("--max-connections", sopts.max_connections,
                 "API connections open at once (more are answered 503); at most half the "
                 "descriptors paddockd may open")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-streams", sopts.max_streams,
                 "streamed answers (exec and process streams, watches, downloads) open at once; "
                 "more are answered 503 (each holds one of the " +
                     std::to_string(sopts.workers) + " request workers)")
      ->check(CLI::Range(size_t{1}, sopts.workers - 1));
  app.add_option("--max-sandboxes", mopts.max_sandboxes, "sandboxes this host holds at most");
  mopts.warm_shells = 4;
  app.add_option("--warm-shells", mopts.warm_shells,
                 "sandboxes kept half-made per warm template for fast creates");
  mopts.warm_shells_max = 16;
  app.add_option("--warm-shells-max", mopts.warm_shells_max,
                 "warm shells a template may have once creates that found none grew its pool "
                 "(one more per such create; back to --warm-shells after a minute without creates)");
  app.add_option("--warm-templates", mopts.warm_templates,
                 "built-in templates that get warm shells (default host,busybox)")
      ->delimiter(',')
      ->check(CLI::IsMember({"host", "busybox"}));
  app.add_option("--warm-images", mopts.warm_images,
                 "images (the last created from) that get warm shells too");
  api::E2bOptions e2b_opts;
  app.add_option("--e2b-domain", e2b_opts.domain, "domain the E2B API reports for sandboxes");
  net::NetworkOptions nopts;
  nopts.warm_slots = 4;
  bool no_network = false;
  app.add_flag("--no-network", no_network, "sandboxes get loopback only (no bridge, no firewall table)");
  app.add_option("--bridge", nopts.bridge, "the sandboxes' bridge");
  app.add_option("--network-pool", nopts.pool, "IPv4 CIDR of sandbox addresses (the first is the gateway)");
  app.add_option("--dns", nopts.dns, "resolvers for sandboxes (default: the host's, less loopback ones)");
  app.add_option("--warm-slots", nopts.warm_slots, "network slots kept ready for creates and starts");
  app.add_option("--recycled-slots", nopts.recycled_slots,
                 "released network slots kept, once reset, for the next sandboxes (beyond --warm-slots)");
  app.add_option("--nft-table", nopts.table, "name of Paddock's nftables table (inet family)");
  app.add_option("--max-sandbox-connections", nopts.max_connections,
                 "connections each sandbox may have open at once through the host, in its conntrack "
                 "table (new ones past it are refused; 0: no cap)");
  app.add_option("--egress-allow-private", nopts.private_allowed,
                 "a private-range CIDR every sandbox may reach (default egress is the "
                 "public internet only)");
  app.add_option("--insecure-registry", mopts.registry.insecure,
                 "a registry reached over plain HTTP (loopback ones always are)");
  std::string default_memory = "1G";
  app.add_option("--default-memory", default_memory,
                 "memory limit of a sandbox created without one (0: none)");
  app.add_option("--default-cpu", mopts.default_limits.cpu_millicores,
                 "CPU limit, in millicores, of a sandbox created without one (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--default-pids", mopts.default_limits.pids,
                 "process limit of a sandbox created without one (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--idle-timeout", mopts.default_idle_timeout_s,
                 "seconds without exec, file operation or proxied connection until a sandbox created "
                 "without its own idle_timeout stops (0: never)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--archive-after", mopts.default_archive_after_s,
                 "seconds a sandbox created without its own archive_after stays stopped until its files are "
                 "archived (compressed, the folder removed; its start restores them) (0: never)")
      ->check(CLI::NonNegativeNumber);
  std::vector<std::string> cdi_dirs;
  app.add_option("--cdi-dir", cdi_dirs,
                 "a folder of CDI device specs (repeatable; default /etc/cdi and /var/run/cdi)");
  app.add_option("--gpu-root", mopts.gpu_root,
                 "where an NVIDIA driver without a CDI spec is looked for (its /dev/nvidia*, /usr/local/nvidia)");
  app.add_flag("--shared-devices", mopts.shared_devices,
               "a device may be given to several sandboxes at once (default: one holds it until deleted)");
  std::vector<std::string> host_dirs;
  app.add_option("--host-dir", host_dirs,
                 "NAME=/host/path: a host folder sandboxes may mount read-only by NAME (repeatable)");
  std::string disk_pool = "0", default_disk = "0";
  app.add_option("--disk-pool", disk_pool,
                 "keep sandboxes' files on an XFS image of this size (<state>/disk.img, sparse) so that "
                 "their disk use can be limited; once made, always used");
  app.add_option("--default-disk", default_disk, "disk limit of a sandbox created without one (0: none)");
  std::string max_upload = "64G";
  app.add_option("--max-upload", max_upload, "largest upload (an image archive) paddockd accepts");
  app.add_option("--init", mopts.init_path, "path of paddock-init");
  app.add_option("--reap-interval-ms", reap_interval_ms, "how often timeouts are checked");
  int host_lock_wait_s = mopts.host_lock_wait_ms / 1000;
  app.add_option("--host-lock-wait", host_lock_wait_s,
                 "seconds to wait at start-up for another paddockd on this host to stop (one runs per "
                 "host; " + mopts.host_lock + " names it)")
      ->check(CLI::Range(0, 3600));
  CLI11_PARSE(app, argc, argv);
  mopts.host_lock_wait_ms = host_lock_wait_s * 1000;
  if (auto bytes = ParseSize(default_memory); bytes.ok() && (*bytes == 0 || *bytes >= (4 << 20))) {
    mopts.default_limits.memory_bytes = *bytes;
  } else {
    std::fprintf(stderr, "--default-memory: '%s' is not 0 or a size of at least 4M\n",
                 default_memory.c_str());
    return 2;
  }
  for (auto [flag, text, into] : {std::tuple{"--disk-pool", &disk_pool, &mopts.disk_pool_bytes},
                                  std::tuple{"--default-disk", &default_disk, &mopts.default_disk_bytes}}) {
    auto bytes = ParseSize(*text);
    if (!bytes.ok()) {
      std::fprintf(stderr, "%s: '%s' is not a size (like 64G or 500M)\n", flag, text->c_str());
      return 2;
    }
    *into = *bytes;
  }
  for (const auto& entry : host_dirs) {
    size_t eq = entry.find('=');
    std::string name = entry.substr(0, eq), path = eq == std::string::npos ? "" : entry.substr(eq + 1);
    struct stat st;
    if (name.empty() || path.empty() || path[0] != '/' || ::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      std::fprintf(stderr, "--host-dir: '%s' is not NAME=/an/existing/folder\n", entry.c_str());
      return 2;
    }
    mopts.host_dirs[name] = path;
  }
  if (!cdi_dirs.empty()) mopts.cdi_dirs = cdi_dirs;
  if (mopts.default_disk_bytes > 0 && mopts.disk_pool_bytes == 0) {
    std::fprintf(stderr, "--default-disk needs --disk-pool\n");
    return 2;
  }
  if (auto bytes = ParseSize(max_upload); bytes.ok() && *bytes > 0) {
    sopts.max_file_body_bytes = static_cast<uint64_t>(*bytes);
  } else {
    std::fprintf(stderr, "--max-upload: '%s' is not a size (like 64G or 500M)\n",
                 max_upload.c_str());
    return 2;
  }
  if (!no_network) mopts.network = nopts;

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  // Every connection, agent link and sandbox takes descriptors: use what the
  // host allows (services often start with a soft limit of 1,024), and keep
  // connections to half of it so a flood cannot starve the rest.
  struct rlimit files {};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = std::max(files.rlim_cur, std::min<rlim_t>(files.rlim_max, rlim_t{1} << 20));
    (void)::setrlimit(RLIMIT_NOFILE, &files);
    ::getrlimit(RLIMIT_NOFILE, &files);
    if (sopts.max_connections > files.rlim_cur / 2) {
      sopts.max_connections = std::max<size_t>(files.rlim_cur / 2, 1);
      spdlog::warn("msg=\"max connections lowered to half the descriptor limit\" max_connections={}",
                   sopts.max_connections);
    }
  }
  // Signals are taken by a waiting thread; block them everywhere else.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  auto start = std::chrono::steady_clock::now();
  auto manager = SandboxManager::Open(mopts);
  if (!manager.ok()) {
    spdlog::critical("msg=\"cannot open state\" state_dir={} error=\"{}\"", mopts.state_dir,
                     manager.status().ToString());
    return 1;
  }
  const RecoveryReport& r = (*manager)->recovery();
  double recover_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  spdlog::info(
      "msg=recovered adopted={} finished={} rolled_back={} marked_stopped={} swept_dirs={} "
      "swept_cgroups={} ms={:.1f} cgroup={}",
      r.adopted, r.finished, r.rolled_back, r.marked_stopped, r.swept_dirs, r.swept_cgroups, recover_ms,
      (*manager)->cgroup_version());

  // Uploads are written here on their way in; a crash leaves at most a few.
  sopts.spool_dir = mopts.state_dir + "/uploads";
  if (Status s = RemoveTree(sopts.spool_dir); s.ok())
    s = MakeDirs(sopts.spool_dir, 0700);
  else
    spdlog::warn("msg=\"cannot clear uploads\" error=\"{}\"", s.ToString());
  // For uploads the REST API and envd answer. (A relayed request never
  // gets here: the router claims it on its header and streams its body.)
  sopts.body_to_file = [](const api::Request& req) {
    if (api::E2bApi::Handles(req)) return api::E2bApi::TakesUpload(req);
    return api::RestApi::TakesUpload(req);
  };

  api::Metrics metrics;
  // Builds use the manager: declared after it, destroyed (builds finished) first.
  build::TemplateBuilder builder(manager->get(), mopts.state_dir + "/build-files");
  builder.SweepInterrupted();
  api::RestApi rest(manager->get(), &metrics, &builder);
  api::E2bApi e2b(manager->get(), &builder, e2b_opts);
  api::PortProxy proxy(manager->get(), sopts.api_key);
  sopts.screen_header = [&e2b](const api::Request& req) { return e2b.ScreenHeader(req); };
  sopts.handler_authenticates = [&e2b](const api::Request& req) {
    return api::E2bApi::IsEnvdRequest(req) || api::PortProxy::IsPublic(req) || e2b.VolumeTokenMatches(req);
  };
  sopts.router = [&proxy](api::Request& req, const std::string& client) { return proxy.Decide(req, client); };
  api::HttpServer server(sopts, [&](api::Request& req, api::StreamWriter& out) {
    if (api::E2bApi::Handles(req)) return e2b.Handle(req, out);
    return rest.Handle(req, out);
  });
  if (Status s = server.Start(); !s.ok()) {
    spdlog::critical("msg=\"cannot listen\" error=\"{}\"", s.ToString());
    return 1;
  }
  spdlog::info("msg=serving socket={} tcp={} network={}", sopts.unix_socket,
               sopts.tcp_listen.empty() ? "off" : sopts.tcp_listen,
               (*manager)->network() ? (*manager)->network()->pool().ToString() + " on " + nopts.bridge : "off");

  // The reaper: deadlines live in the store, so a restart loses none.
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread reaper([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::milliseconds(reap_interval_ms));
      if (stopping) break;
      lock.unlock();
      int acted = (*manager)->Reap(WallClockMillis());
      if (acted) spdlog::info("msg=reaping sandboxes={}", acted);
      lock.lock();
    }
  });

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("msg=stopping signal={}", sig);
  // Agent waits end within a second from here. Whatever else still holds a
  // request after kShutdownGraceS (a pull, a stop's grace period) is cut
  // short by exiting: every transition is journaled, and the next start
  // finishes or rolls it back as it would after a crash.
  (*manager)->BeginShutdown();
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(kShutdownGraceS));
    spdlog::warn("msg=\"requests still running {} s after the stop signal; exiting without them\"",
                 kShutdownGraceS);
    spdlog::default_logger()->flush();
    std::_Exit(0);
  }).detach();
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  reaper.join();
  server.Stop();
  ::unlink(sopts.unix_socket.c_str());
  return 0;
}
